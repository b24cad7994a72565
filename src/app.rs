//! The dispatcher: the one dispatch over [`Action`]; every error becomes an envelope
//! (and a log line, and a metric) here, once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tracing::{error, info, warn};

use crate::actions;
use crate::clock::Clock;
use crate::config::Config;
pub use crate::context::Ctx;
use crate::context::Services;
use crate::error::{Error, Result};
use crate::event::{self, Action, Invocation, Source};
use crate::managers::Managers;
use crate::response::Envelope;
use crate::telemetry::{self, Emf, InvocationMetrics, MetricsSink};

/// Everything an invocation may use, and how its answers are measured.
#[derive(Clone)]
pub struct App {
    pub services: Services,
    /// Where the EMF records of each invocation go, and their renderer (`None`: no metrics).
    metrics: Option<(Arc<dyn MetricsSink>, Arc<Emf>)>,
    /// True until the first invocation of this process has been answered.
    cold: Arc<AtomicBool>,
}

/// The outcome class of an invocation (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandledOutcome {
    Success,
    ClientError,
    ServerError,
}

impl HandledOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HandledOutcome::Success => "success",
            HandledOutcome::ClientError => "client_error",
            HandledOutcome::ServerError => "server_error",
        }
    }
}

/// The result of handling one event.
#[derive(Debug, Clone)]
pub struct Handled {
    pub envelope: Envelope,
    /// The canonical action name, or `(invalid)` when the event did not parse.
    pub action: &'static str,
    pub outcome: HandledOutcome,
}

impl App {
    pub fn new(config: Config, clock: Arc<dyn Clock>, aws: Managers) -> Self {
        App {
            services: Services::new(config, clock, aws),
            metrics: None,
            cold: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Emits the EMF records of every invocation to `sink`.
    pub fn with_metrics(mut self, sink: Arc<dyn MetricsSink>) -> Self {
        let emf = Arc::new(Emf::new(&self.services.config.metrics_namespace));
        self.metrics = Some((sink, emf));
        self
    }

    /// Handles one raw event and returns the envelope; with a metrics sink, also writes
    /// the invocation's EMF records (see `telemetry`). Never fails.
    pub async fn handle(&self, event: &Value, ctx: &Ctx) -> Handled {
        let Some((sink, emf)) = &self.metrics else {
            return self.handle_event(event, ctx).await;
        };
        let started = std::time::Instant::now();
        let (handled, calls, counters) = telemetry::measure(|| self.handle_event(event, ctx)).await;
        let record = InvocationMetrics {
            timestamp_ms: self.services.clock.now_ms(),
            action: handled.action,
            outcome: handled.outcome.as_str(),
            duration: started.elapsed(),
            cold_start: self.cold.swap(false, Ordering::Relaxed),
            request_id: &ctx.request_id,
            calls: &calls,
            counters: &counters,
        };
        emf.render(&record, |line| sink.emit(line));
        handled
    }

    /// The envelope of `event`, shaped for its transport.
    async fn handle_event(&self, event: &Value, ctx: &Ctx) -> Handled {
        let mut handled = self.answer(event, ctx).await;
        if let Some(flavor) = event::http_flavor(event) {
            handled.envelope = handled.envelope.for_http(Some(flavor));
        }
        handled
    }

    /// Handles one event given as JSON text, as the Lambda Runtime API delivers it. An
    /// event nested deeper than it is read is answered with a 400 envelope, as is any
    /// other event the function cannot take: never with a runtime error.
    pub async fn handle_text(&self, raw: &str, ctx: &Ctx) -> Handled {
        match event::from_text(raw) {
            Ok(event) => self.handle(&event, ctx).await,
            Err(e) => {
                warn!(status = e.status_code(), error = %e.client_message(), "invocation rejected");
                Handled {
                    envelope: Envelope::error(&e),
                    action: "(invalid)",
                    outcome: HandledOutcome::ClientError,
                }
            }
        }
    }

    /// The checks before an action runs: the event parses, the guard passes, HTTP carries
    /// only the Ko-fi webhook, and the caller may call the action.
    pub fn screen(&self, event: &Value) -> Result<Invocation> {
        self.admit(event::parse(event)?)
    }

    /// The checks of [`App::screen`] after the parse.
    fn admit(&self, inv: Invocation) -> Result<Invocation> {
        if inv.source == Source::Http && !matches!(inv.action, Action::KofiWebhook(_)) {
            return Err(Error::Forbidden(format!(
                "Action '{}' cannot be called over HTTP; only kofi-webhook can",
                inv.action.name()
            )));
        }
        crate::auth::authorize(&self.services.config, &inv.action, &inv.user_id)?;
        Ok(inv)
    }

    /// Every error becomes an error envelope here, and is logged here, once.
    async fn answer(&self, event: &Value, ctx: &Ctx) -> Handled {
        let inv = match event::parse(event) {
            Ok(inv) => inv,
            Err(e) => {
                warn!(
                    status = e.status_code(),
                    error = %e.client_message(),
                    fields = ?event::field_names(event),
                    "invocation rejected"
                );
                return Handled {
                    envelope: Envelope::error(&e),
                    action: "(invalid)",
                    outcome: HandledOutcome::ClientError,
                };
            }
        };
        let action = inv.action.name();
        info!(
            action,
            userId = %inv.user_id,
            source = inv.source.as_str(),
            fields = ?event::field_names(event),
            remaining_ms = ctx.deadline_ms.map(|d| d - self.services.clock.now_ms()),
            "invocation"
        );
        let result = match self.admit(inv) {
            // One notification budget for the whole invocation (actions::deliver).
            Ok(inv) => actions::deliver::one_budget(self.dispatch(inv, ctx)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(body) => Handled {
                envelope: Envelope::ok(&body),
                action,
                outcome: HandledOutcome::Success,
            },
            Err(e) => {
                let status = e.status_code();
                if e.is_client_error() {
                    warn!(action, status, error = %e.client_message(), "action refused");
                } else {
                    error!(action, status, error = %e.client_message(), "action failed");
                }
                Handled {
                    envelope: Envelope::error(&e),
                    action,
                    outcome: if e.is_client_error() {
                        HandledOutcome::ClientError
                    } else {
                        HandledOutcome::ServerError
                    },
                }
            }
        }
    }

    async fn dispatch(&self, inv: Invocation, ctx: &Ctx) -> Result<Value> {
        let Invocation { user_id, action, .. } = inv;
        let svc = &self.services;
        let uid = user_id.as_str();
        match action {
            Action::Create(f) => actions::instance::create(svc, ctx, uid, &f).await,
            Action::Start(_) => actions::instance::start(svc, ctx, uid).await,
            Action::Stop(_) => actions::instance::stop(svc, uid).await,
            Action::Destroy(f) => {
                actions::instance::destroy(svc, ctx, uid, f.keep_license_sharing.unwrap_or(false)).await
            }
            Action::Delete(_) => actions::instance::delete(svc, ctx, uid).await,
            Action::UpdateVersion(f) => actions::instance::update_version(svc, uid, f.foundry_version.as_deref()).await,
            Action::Status(_) => actions::instance::status(svc, uid).await,
            Action::ListAll(_) => actions::instance::list_all(svc).await,
            Action::ListSessions(_) => actions::sessions::list_sessions(svc, uid).await,
            Action::GetScheduledSessions(_) => actions::sessions::get_scheduled_sessions(svc, uid).await,
            Action::ScheduleSession(f) => actions::sessions::schedule_session(svc, uid, &f).await,
            Action::CancelSession(f) => actions::sessions::cancel_session(svc, uid, f.session_id.as_deref()).await,
            Action::CheckAvailability(f) => actions::sessions::check_availability(svc, uid, &f).await,
            Action::StartScheduledSession(f) => {
                actions::sessions::start_scheduled_session(svc, ctx, uid, f.session_id.as_deref()).await
            }
            Action::EndScheduledSession(f) => {
                actions::sessions::end_scheduled_session(svc, uid, f.session_id.as_deref()).await
            }
            Action::PrepareSessions(_) => actions::sessions::prepare_sessions(svc, ctx).await,
            Action::GetSessionsForLicense(f) => {
                actions::sessions::sessions_for_license(svc, f.license_id.as_deref().unwrap_or_default()).await
            }
            Action::CancelSessionsForLicense(f) => {
                actions::sessions::cancel_sessions_for_license(svc, f.license_id.as_deref().unwrap_or_default()).await
            }
            Action::SetLicenseSharing(f) => actions::licenses::set_license_sharing(svc, uid, &f).await,
            Action::ManageLicenseState(f) => {
                actions::licenses::manage_license_state(svc, uid, f.license_state_operation.as_deref()).await
            }
            Action::RequestLicense(_) => actions::sessions::request_license(svc, uid).await,
            Action::ReleaseLicense(_) => actions::sessions::release_license(svc, uid).await,
            Action::HealthCheck(_) => actions::health::health_check(svc).await,
            Action::ListBackups(f) => actions::backups::list_backups(svc, ctx, uid, f.target_user_id.as_deref()).await,
            Action::LicensePoolStatus(_) => actions::licenses::license_pool_status(svc, uid).await,
            Action::ShutdownStats(_) => actions::automation::shutdown_stats(svc).await,
            Action::AutoShutdownCheck(_) => actions::automation::auto_shutdown_check(svc, ctx).await,
            Action::GetUserCosts(_) => actions::billing::get_user_costs(svc, uid).await,
            Action::GetAllCosts(_) => actions::billing::get_all_costs(svc).await,
            Action::SendNotification(f) => actions::notify::send_notification(svc, ctx, &f).await,
            Action::AdminOverview(_) => actions::admin::admin_overview(svc).await,
            Action::AdminForceShutdown(f) => {
                actions::admin::force_shutdown(svc, f.target_user_id.as_deref(), f.force_reason.as_deref()).await
            }
            Action::AdminCancelSession(f) => {
                actions::admin::cancel_session(svc, f.session_id.as_deref(), f.force_reason.as_deref()).await
            }
            Action::AdminCancelAllSessions(f) => {
                actions::admin::cancel_all_sessions(svc, f.force_reason.as_deref()).await
            }
            Action::AdminSystemMaintenance(f) => {
                actions::admin::system_maintenance(svc, f.force_reason.as_deref()).await
            }
            Action::AdminMaintenanceReset(f) => actions::admin::maintenance_reset(svc, f.force_reason.as_deref()).await,
            Action::AdminReconcile(f) => actions::reconcile::admin_reconcile(svc, ctx, &f).await,
            Action::AdminBackfillRunIndex(_) => actions::admin::backfill_run_index(svc).await,
            Action::KofiWebhook(f) => actions::kofi::kofi_webhook(svc, f.body.as_ref()).await,
            Action::EcsTaskStateChange(f) => actions::run::task_state_change(svc, &f.members).await,
            Action::SetNotifications(f) => actions::notify::set_notifications(svc, uid, &f).await,
            Action::RestoreBackup(f) => actions::backups::restore_backup(svc, ctx, uid, &f).await,
        }
    }
}
