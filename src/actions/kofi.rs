//! `kofi-webhook`: Ko-fi's payment notifications, verified, recorded once, and credited
//! to the donor's month.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::domain::kofi::{self, Kind, Payload};
use crate::domain::money;
use crate::error::{Error, Result};
use crate::secret::Sensitive;
use crate::store::{Credit, Payment};

/// The answer of `kofi-webhook`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    message: String,
    user_id: Option<String>,
    amount: f64,
    donor: String,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("Invalid Ko-fi payload: {why}"))
}

/// `kofi-webhook`: the Ko-fi JSON as the original took it (a `body` string), or as Ko-fi
/// posts it (form-encoded `data=` through the function URL). The verification token must
/// match `KOFI_VERIFICATION_TOKEN` (webhooks are refused while it is unset); each Ko-fi
/// message is credited once, however often Ko-fi sends it; only donations and
/// memberships in `KOFI_CURRENCY` are credited, the other payments are only recorded.
pub async fn kofi_webhook(svc: &Services, body: Option<&Sensitive>) -> Result<Value> {
    let body = body
        .filter(|b| !b.expose().is_empty())
        .ok_or_else(|| Error::BadRequest("Missing webhook body".into()))?;
    let Some(expected) = svc.config.kofi_verification_token.as_ref() else {
        return Err(Error::Forbidden(
            "Ko-fi webhooks are refused: KOFI_VERIFICATION_TOKEN is not configured".into(),
        ));
    };
    // The error names the position only: the body holds the token and the donor's data.
    let payload: Payload = serde_json::from_str(body.expose())
        .map_err(|e| bad(format_args!("not JSON (line {}, column {})", e.line(), e.column())))?;
    if !kofi::verified(expected.expose(), payload.verification_token.as_ref()) {
        return Err(Error::Forbidden("Invalid Ko-fi verification token".into()));
    }
    let message_id = payload
        .message_id
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("message_id is missing"))?;
    let kind = Kind::parse(payload.kind.as_deref()).map_err(bad)?;
    let amount = money::amount(payload.amount.as_deref().unwrap_or("")).map_err(bad)?;
    let currency = payload
        .currency
        .as_deref()
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_else(|| svc.config.kofi_currency.clone());
    if !kofi::valid_currency(&currency) {
        return Err(bad(format_args!("currency '{currency}' is not a currency code")));
    }
    let donor = payload
        .from_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Anonymous".into());
    let discord = payload
        .message
        .as_deref()
        .and_then(kofi::discord_id)
        .map(str::to_string);

    let not_credited = match (&discord, kind.supports_hosting(), currency == svc.config.kofi_currency) {
        (None, _, _) => Some("Donation received but no Discord ID found".to_string()),
        (_, false, _) => Some(format!(
            "{} recorded; only donations and memberships are credited",
            kind.as_str()
        )),
        (_, _, false) => Some(format!(
            "Donation recorded but not credited: it is in {currency}, credits are in {}",
            svc.config.kofi_currency
        )),
        _ => None,
    };
    let now = svc.now();
    let payment = Payment {
        message_id,
        kind: kind.as_str().to_string(),
        amount: amount.to_string(),
        currency,
        discord_id: discord.clone(),
        credited: not_credited.is_none(),
        received_at: now,
    };
    let credit = match (&discord, &not_credited) {
        (Some(user_id), None) => Some(Credit {
            user_id: user_id.clone(),
            amount,
            donor: donor.clone(),
        }),
        _ => None,
    };
    let new = svc.store.usage.record_payment(&payment, credit.as_ref(), now).await?;
    if let (true, Some(credit)) = (new, credit.as_ref()) {
        thank(svc, credit, &payment).await;
    }
    let message = match (new, not_credited) {
        (false, _) => "Donation already processed".to_string(),
        (true, Some(why)) => why,
        (true, None) => "Donation processed successfully".to_string(),
    };
    tracing::info!(
        kind = kind.as_str(),
        credited = payment.credited && new,
        "Ko-fi payment received"
    );
    crate::response::to_body(&Received {
        message,
        user_id: discord,
        amount: money::number(Some(amount)),
        donor,
    })
}

/// Thanks the user for a credited payment: the amount, and the hours of hosting it covers
/// at `INSTANCE_COST_PER_HOUR` this month. Once per payment (keyed by Ko-fi's
/// `message_id`).
async fn thank(svc: &Services, credit: &Credit, payment: &Payment) {
    if svc.config.notifications.is_none() {
        return;
    }
    let amount = format!("{:.2} {}", money::number(Some(credit.amount)), payment.currency);
    let rate = svc.config.instance_cost_per_hour;
    let covers = if rate.is_finite() && rate > 0.0 {
        let hours = money::number(Some(credit.amount)) / rate;
        format!(
            "about {hours:.1} hours of hosting (at {rate} {} per hour)",
            payment.currency
        )
    } else {
        "your hosting this month".to_string()
    };
    let notice = crate::domain::notify::kofi_thanks(&credit.user_id, &payment.message_id, &amount, &covers);
    crate::actions::deliver::notify_one(svc, notice).await;
}
