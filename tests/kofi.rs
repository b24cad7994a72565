//! Ko-fi's webhook on the fakes: the form post Ko-fi really sends, verified, credited
//! once however often it is sent, by type and currency, and never logged.

use base64::Engine;
use foundry_lambda::config::{test_vars, Config};
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, fake_app_with, invoke, FakeAws};
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600;
const TOKEN: &str = "kofi-test-token";
const DONOR: &str = "123456789012345678";
const USAGE: &str = "foundry-vtt-usage";

fn payload(token: &str, message_id: &str, kind: &str, amount: &str, currency: &str) -> String {
    json!({"verification_token":token,"message_id":message_id,"timestamp":"2026-01-01T00:00:00Z","type":kind,
           "is_public":true,"from_name":"Jo Example","message":format!("Discord: {DONOR} - thanks!"),"amount":amount,
           "url":"https://ko-fi.com/Home/CoffeeShop?txid=x","email":"jo.private@example.com","currency":currency,
           "is_subscription_payment":false,"is_first_subscription_payment":false,"kofi_transaction_id":"t-1"})
    .to_string()
}

/// Ko-fi's POST through the function URL: form-encoded `data=<json>`, base64.
fn function_url_post(data: &str) -> Value {
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("data", data)
        .finish();
    json!({"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"",
           "headers":{"content-type":"application/x-www-form-urlencoded","user-agent":"Kofi-Webhook"},
           "requestContext":{"http":{"method":"POST","path":"/"}},
           "body": base64::engine::general_purpose::STANDARD.encode(form),"isBase64Encoded":true})
}

fn donations(fake: &FakeAws, uid: &str) -> Option<String> {
    fake.dynamo
        .items(USAGE)
        .iter()
        .find(|u| matches!(u.get("usageKey"), Some(AttributeValue::S(k)) if k.starts_with(&format!("{uid}#"))))
        .and_then(|u| match u.get("donationsThisMonth") {
            Some(AttributeValue::N(n)) => Some(n.clone()),
            _ => None,
        })
}

#[tokio::test]
async fn a_form_post_sent_three_times_credits_once() {
    let (app, fake, _) = fake_app(T0);
    let post = function_url_post(&payload(TOKEN, "msg-1", "Donation", "3.00", "USD"));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(invoke(&app, post.clone()).await);
    }
    assert_eq!(
        answers[0],
        (
            200,
            json!({"message":"Donation processed successfully","userId":DONOR,"amount":3,"donor":"Jo Example"})
        )
    );
    for later in &answers[1..] {
        assert_eq!(later.0, 200);
        assert_eq!(later.1["message"], "Donation already processed");
    }
    assert_eq!(donations(&fake, DONOR).as_deref(), Some("3"));
    let (_, costs) = invoke(&app, json!({"action":"get-user-costs","userId":DONOR})).await;
    assert_eq!(costs["donationsReceived"], 3);
    assert_eq!(costs["lastDonorName"], "Jo Example");
}

#[tokio::test]
async fn a_wrong_token_credits_nothing_answers_403_and_is_never_logged() {
    let (app, fake, _) = fake_app(T0);
    let (_guard, log) = foundry_lambda::logging::capture("trace");
    let wrong = "wrong-token-4f1d2b";
    let (code, body) = invoke(
        &app,
        function_url_post(&payload(wrong, "msg-2", "Donation", "3.00", "USD")),
    )
    .await;
    assert_eq!((code, body), (403, json!({"error":"Invalid Ko-fi verification token"})));
    assert!(fake.dynamo.items(USAGE).is_empty(), "nothing credited or recorded");
    let text = log.contents();
    for secret in [wrong, TOKEN, "jo.private@example.com"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

#[tokio::test]
async fn without_a_configured_token_every_webhook_is_refused() {
    let vars: Vec<(&str, &str)> = test_vars()
        .into_iter()
        .filter(|(k, _)| *k != "KOFI_VERIFICATION_TOKEN")
        .collect();
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    let (app, fake, _) = fake_app_with(T0, config);
    let (code, body) = invoke(
        &app,
        function_url_post(&payload("", "msg-3", "Donation", "3.00", "USD")),
    )
    .await;
    assert_eq!(
        (code, body),
        (
            403,
            json!({"error":"Ko-fi webhooks are refused: KOFI_VERIFICATION_TOKEN is not configured"})
        )
    );
    assert!(fake.dynamo.items(USAGE).is_empty());
}

#[tokio::test]
async fn the_originals_direct_invoke_needs_no_user_id() {
    let (app, fake, _) = fake_app(T0);
    let event = json!({"action":"kofi-webhook","body": payload(TOKEN, "msg-4", "Subscription", "5", "USD")});
    let (code, body) = invoke(&app, event).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Donation processed successfully");
    assert_eq!(donations(&fake, DONOR).as_deref(), Some("5"));
}

#[tokio::test]
async fn other_currencies_and_purchases_are_recorded_but_not_credited() {
    let (app, fake, _) = fake_app(T0);
    let (_, body) = invoke(
        &app,
        function_url_post(&payload(TOKEN, "msg-5", "Donation", "4.00", "EUR")),
    )
    .await;
    assert_eq!(
        body["message"],
        "Donation recorded but not credited: it is in EUR, credits are in USD"
    );
    let (_, body) = invoke(
        &app,
        function_url_post(&payload(TOKEN, "msg-6", "Shop Order", "9.00", "USD")),
    )
    .await;
    assert_eq!(
        body["message"],
        "Shop Order recorded; only donations and memberships are credited"
    );
    assert_eq!(donations(&fake, DONOR), None);
    let recorded: Vec<_> = fake
        .dynamo
        .items(USAGE)
        .into_iter()
        .filter(|u| matches!(u.get("usageKey"), Some(AttributeValue::S(k)) if k.starts_with("kofi#")))
        .collect();
    assert_eq!(recorded.len(), 2);
    assert!(recorded
        .iter()
        .all(|r| r.get("credited") == Some(&AttributeValue::Bool(false))));
}

#[tokio::test]
async fn bad_payloads_are_400s_that_say_what_is_wrong() {
    let (app, fake, _) = fake_app(T0);
    for (data, why) in [
        (
            "not json".to_string(),
            "Invalid Ko-fi payload: not JSON (line 1, column 2)",
        ),
        (
            payload(TOKEN, "m", "Donation", "3,50", "USD"),
            "Invalid Ko-fi payload: amount '3,50' is not a number",
        ),
        (
            payload(TOKEN, "m", "Donation", "0", "USD"),
            "Invalid Ko-fi payload: amount '0' is not positive",
        ),
        (
            payload(TOKEN, "m", "Refund", "3", "USD"),
            "Invalid Ko-fi payload: unknown type 'Refund'",
        ),
        (
            payload(TOKEN, "m", "Donation", "3", "dollars"),
            "Invalid Ko-fi payload: currency 'DOLLARS' is not a currency code",
        ),
        (
            payload(TOKEN, "", "Donation", "3", "USD"),
            "Invalid Ko-fi payload: message_id is missing",
        ),
    ] {
        assert_eq!(
            invoke(&app, function_url_post(&data)).await,
            (400, json!({"error": why})),
            "{data}"
        );
    }
    assert!(fake.dynamo.items(USAGE).is_empty());
}

#[tokio::test]
async fn a_donation_without_a_discord_id_is_recorded_and_says_so() {
    let (app, _, _) = fake_app(T0);
    let data = payload(TOKEN, "msg-7", "Donation", "2.50", "USD")
        .replace("Discord: 123456789012345678 - thanks!", "no id here");
    assert_eq!(
        invoke(&app, function_url_post(&data)).await,
        (
            200,
            json!({"message":"Donation received but no Discord ID found","amount":2.5,"donor":"Jo Example"})
        )
    );
}

#[tokio::test]
async fn donations_add_up_exactly() {
    let (app, fake, _) = fake_app(T0);
    for (i, amount) in ["0.10", "0.20"].iter().enumerate() {
        let (code, _) = invoke(
            &app,
            function_url_post(&payload(TOKEN, &format!("m-{i}"), "Donation", amount, "USD")),
        )
        .await;
        assert_eq!(code, 200);
    }
    assert_eq!(donations(&fake, DONOR).as_deref(), Some("0.3"));
    let (_, costs) = invoke(&app, json!({"action":"get-all-costs","userId":"system"})).await;
    assert_eq!(costs["totalDonations"], json!(0.3), "not 0.30000000000000004");
}
