//! The continuation token of `admin-reconcile`: where the next call goes on.
//!
//! The reconcile walks the listings one after another ([`Phase`]), each a page at a time.
//! The token names the listing and the page of it to read next: base64url (no padding) of
//! the JSON `{"v":1,"phase":"<name>","marker":"<the listing's own page token>"}`. It holds
//! no verdict and no list of names: everything is listed and judged again when the next
//! call reads that page, so a token stays valid however long it waits, and a page the
//! last call could not finish is simply read again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The listings, in the order they are walked. Listener rules come before the target
/// groups they forward to, and the DNS records before both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    ListenerRules,
    DnsRecords,
    TargetGroups,
    AccessPoints,
    Buckets,
    IamUsers,
    Secrets,
    TaskDefinitionFamilies,
    LogGroups,
    /// `/ecs/foundry-<userId>`: the original's sidecar wrote there.
    SidecarLogGroups,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::ListenerRules,
        Phase::DnsRecords,
        Phase::TargetGroups,
        Phase::AccessPoints,
        Phase::Buckets,
        Phase::IamUsers,
        Phase::Secrets,
        Phase::TaskDefinitionFamilies,
        Phase::LogGroups,
        Phase::SidecarLogGroups,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::ListenerRules => "listener-rules",
            Phase::DnsRecords => "dns-records",
            Phase::TargetGroups => "target-groups",
            Phase::AccessPoints => "access-points",
            Phase::Buckets => "buckets",
            Phase::IamUsers => "iam-users",
            Phase::Secrets => "secrets",
            Phase::TaskDefinitionFamilies => "task-definition-families",
            Phase::LogGroups => "log-groups",
            Phase::SidecarLogGroups => "sidecar-log-groups",
        }
    }

    fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The listing after this one (`None`: this was the last).
    pub fn next(self) -> Option<Phase> {
        let i = Phase::ALL.iter().position(|p| *p == self)?;
        Phase::ALL.get(i + 1).copied()
    }
}

/// A position in the walk: a listing and the page of it to read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub phase: Phase,
    /// The listing's own page token (`None`: its first page).
    pub marker: Option<String>,
}

impl Cursor {
    pub fn start() -> Self {
        Cursor {
            phase: Phase::ALL[0],
            marker: None,
        }
    }

    /// Where to go after the page this cursor read, whose listing said `next` → `None`
    /// when the walk is over.
    pub fn after(&self, next: Option<String>) -> Option<Cursor> {
        match next {
            Some(marker) => Some(Cursor {
                phase: self.phase,
                marker: Some(marker),
            }),
            None => self.phase.next().map(|phase| Cursor { phase, marker: None }),
        }
    }

    pub fn encode(&self) -> String {
        let wire = Wire {
            v: 1,
            phase: self.phase.name().to_string(),
            marker: self.marker.clone(),
        };
        // A struct of strings always serializes.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// The cursor of a token an earlier call answered; anything else is a 400.
    pub fn decode(token: &str) -> Result<Self> {
        let bad = || Error::BadRequest("Invalid continuation token: pass the one the last call answered".into());
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if wire.v != 1 {
            return Err(bad());
        }
        let phase = Phase::from_name(&wire.phase).ok_or_else(bad)?;
        Ok(Cursor {
            phase,
            marker: wire.marker.filter(|m| !m.is_empty()),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_the_listing_and_its_page_and_reads_back() {
        let c = Cursor {
            phase: Phase::Buckets,
            marker: Some("foundry-bob-12345678".into()),
        };
        let t = c.encode();
        assert!(
            t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{t}"
        );
        assert_eq!(Cursor::decode(&t).unwrap(), c);
        assert_eq!(Cursor::decode(&Cursor::start().encode()).unwrap(), Cursor::start());
    }

    #[test]
    fn the_walk_goes_page_by_page_then_listing_by_listing_and_ends() {
        let c = Cursor::start();
        let same = c.after(Some("m".into())).unwrap();
        assert_eq!((same.phase, same.marker.as_deref()), (Phase::ListenerRules, Some("m")));
        let next = same.after(None).unwrap();
        assert_eq!((next.phase, next.marker), (Phase::DnsRecords, None));
        let last = Cursor {
            phase: Phase::SidecarLogGroups,
            marker: None,
        };
        assert_eq!(last.after(None), None);
    }

    #[test]
    fn a_forged_or_garbled_token_is_a_400() {
        for bad in [
            "",
            "not base64!",
            "e30",
            &URL_SAFE_NO_PAD.encode(br#"{"v":2,"phase":"buckets"}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":1,"phase":"nothing"}"#),
        ] {
            let e = Cursor::decode(bad).unwrap_err();
            assert_eq!(e.status_code(), 400, "{bad}");
        }
    }
}
