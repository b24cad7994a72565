//! Ko-fi webhook payloads: reading them, verifying them, and finding the donor's
//! Discord id.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::lenient;
use crate::secret::Sensitive;

/// The members of a Ko-fi payload the function reads. Others (the donor's e-mail, the
/// shop items) are never read, so they can never be logged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Payload {
    pub verification_token: Option<Sensitive>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub message_id: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub amount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub from_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub message: Option<String>,
}

/// The kinds of Ko-fi payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Donation,
    Subscription,
    Commission,
    ShopOrder,
}

impl Kind {
    /// The kind named by Ko-fi's `type` (a payload without one is a donation).
    pub fn parse(kind: Option<&str>) -> Result<Kind, String> {
        match kind.map(str::trim).unwrap_or("Donation") {
            "Donation" | "" => Ok(Kind::Donation),
            "Subscription" => Ok(Kind::Subscription),
            "Commission" => Ok(Kind::Commission),
            "Shop Order" => Ok(Kind::ShopOrder),
            other => Err(format!("unknown type '{other}'")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Donation => "Donation",
            Kind::Subscription => "Subscription",
            Kind::Commission => "Commission",
            Kind::ShopOrder => "Shop Order",
        }
    }

    /// Whether a payment of this kind supports the hosting (a donation or a membership),
    /// rather than paying for a commission or a shop item.
    pub fn supports_hosting(self) -> bool {
        matches!(self, Kind::Donation | Kind::Subscription)
    }
}

/// Whether `given` is the configured token, compared in constant time.
pub fn verified(expected: &str, given: Option<&Sensitive>) -> bool {
    let given = given.map(|g| g.expose()).unwrap_or("");
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The Discord id in a donation message: the word `discord` (any case), then any run
/// of `:` and white space, then ASCII digits. `Discord: 123` gives `123`; `Discord ID:
/// 123` gives nothing.
pub fn discord_id(message: &str) -> Option<&str> {
    let lower = message.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("discord") {
        let after = from + found + "discord".len();
        let rest = &message[after..];
        let digits_at = rest
            .char_indices()
            .find(|(_, c)| !(*c == ':' || c.is_whitespace()))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let digits = &rest[digits_at..];
        let len = digits.bytes().take_while(u8::is_ascii_digit).count();
        if len > 0 {
            return Some(&digits[..len]);
        }
        from = after;
    }
    None
}

/// A currency code: three ASCII letters.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discord_id_follows_the_word_discord() {
        assert_eq!(discord_id("Discord: 123456"), Some("123456"));
        assert_eq!(discord_id("discord123"), Some("123"));
        assert_eq!(discord_id("DISCORD :: 42 thanks"), Some("42"));
        assert_eq!(discord_id("Discord ID: 123"), None);
        assert_eq!(discord_id("Discord - 123"), None);
        assert_eq!(discord_id("for discord, my discord: 77"), Some("77"));
        assert_eq!(discord_id("Discord: ١٢٣"), None, "ASCII digits only");
        assert_eq!(discord_id("Discord:\u{a0}99"), Some("99"));
        assert_eq!(discord_id(""), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(verified("tok", Some(&Sensitive::new("tok"))));
        assert!(!verified("tok", Some(&Sensitive::new("to"))));
        assert!(!verified("tok", Some(&Sensitive::new("tok2"))));
        assert!(!verified("tok", None));
    }

    #[test]
    fn kinds_and_currencies() {
        assert_eq!(Kind::parse(Some("Shop Order")), Ok(Kind::ShopOrder));
        assert_eq!(Kind::parse(None), Ok(Kind::Donation));
        assert!(Kind::parse(Some("Refund")).is_err());
        assert!(Kind::Subscription.supports_hosting() && !Kind::Commission.supports_hosting());
        assert!(valid_currency("USD") && !valid_currency("US") && !valid_currency("U$D"));
    }
}
