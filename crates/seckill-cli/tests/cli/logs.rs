//! Logs and request ids: `--log-format json` writes one JSON object per
//! line; every answer carries an `X-Request-Id` (the client's, or a new
//! one), and the log lines a request causes name it.

use seckill_test_support::*;

#[tokio::test]
async fn json_log_lines_name_the_request_that_caused_them() {
    let seckill = Seckill::start_with(&["--log-format", "json"]).await;
    let switched = seckill
        .call(
            Method::POST,
            "/api/v1/admin/degrade",
            &Auth::Admin,
            json!({"level": "reads_cached"}).into(),
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    switched.expect(StatusCode::OK);
    assert_eq!(switched.header("x-request-id"), Some("trace-me-42"));

    let line = eventually(PATIENCE, "the switch to be logged", || async {
        seckill
            .log()
            .lines()
            .find(|line| line.contains("degrade level switched"))
            .map(str::to_string)
    })
    .await;
    let event: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    assert_eq!(event["level"], "WARN", "{event}");
    assert_eq!(event["fields"]["request_id"], "trace-me-42", "{event}");
    assert!(event["timestamp"].is_string(), "{event}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(1, 1).await;
    let first = seckill.purchase("alice", &sale).await;
    first.accepted(&sale);
    let second = seckill.purchase("bob", &sale).await;
    second.expect_error(StatusCode::CONFLICT, "sold_out");
    // Answers made from memory (the refusal, the sale, the list) too.
    let read = seckill
        .get(&format!("/api/v1/sales/{sale}"), &Auth::None)
        .await;
    let list = seckill.get("/api/v1/sales", &Auth::None).await;
    let ids: Vec<&str> = [&first, &second, &read, &list]
        .iter()
        .map(|answer| {
            answer
                .header("x-request-id")
                .expect("a generated request id")
        })
        .collect();
    assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");

    // A client's own id is echoed; one that is not a sensible id is replaced.
    for (sent, kept) in [("order-flow-7", true), ("has spaces in it", false)] {
        let answer = seckill
            .call(
                Method::GET,
                &format!("/api/v1/sales/{sale}/stock"),
                &Auth::None,
                Body::Empty,
                &[("x-request-id", sent)],
            )
            .await;
        let echoed = answer.header("x-request-id").expect("a request id");
        assert_eq!(echoed == sent, kept, "sent {sent:?}, got {echoed:?}");
    }
}
