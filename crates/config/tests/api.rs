//! `[api]`: the bounds on what clients can hold open, users, sessions and rate limits.

mod common;

use std::time::Duration;

use common::{load, one_error, with_base};

#[test]
fn api_connection_limits_default_and_can_be_set_within_bounds() {
    let plan = load(&with_base("")).unwrap();
    assert_eq!(plan.api.max_connections, 512);
    assert_eq!(plan.api.header_read_timeout, Duration::from_secs(10));
    let plan = load(&with_base(
        "[api]\nmax_connections = 64\nheader_read_timeout = \"2s\"\n",
    ))
    .unwrap();
    assert_eq!(plan.api.max_connections, 64);
    assert_eq!(plan.api.header_read_timeout, Duration::from_secs(2));
}

#[test]
fn api_connection_limits_out_of_bounds_are_errors_naming_the_key() {
    let d = one_error(&with_base("[api]\nmax_connections = 0\n"));
    assert_eq!(d.key, "api.max_connections");
    let d = one_error(&with_base("[api]\nheader_read_timeout = \"1h\"\n"));
    assert_eq!(d.key, "api.header_read_timeout");
}

#[test]
fn api_users_sessions_and_rate_limit_default_and_can_be_set() {
    let plan = load(&with_base("")).unwrap();
    assert_eq!(plan.api.users, None);
    assert_eq!(plan.api.session_idle, Duration::from_secs(8 * 3600));
    assert_eq!(plan.api.session_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(
        (plan.api.rate_limit.requests_per_second, plan.api.rate_limit.burst),
        (50, 200)
    );
    let plan = load(&with_base(
        "[api]\nusers = \"users.toml\"\nsession_idle = \"30m\"\nsession_lifetime = \"2h\"\nrate_limit = { requests_per_second = 0, burst = 10 }\n",
    ))
    .unwrap();
    let users = plan.api.users.unwrap();
    assert!(users.ends_with("users.toml"), "{users:?}");
    assert_eq!(plan.api.session_idle, Duration::from_secs(1800));
    assert_eq!(plan.api.session_lifetime, Duration::from_secs(7200));
    assert_eq!(plan.api.rate_limit.requests_per_second, 0);
}

#[test]
fn api_session_and_rate_limit_errors_name_the_key() {
    let d = one_error(&with_base("[api]\nsession_idle = \"1s\"\n"));
    assert_eq!(d.key, "api.session_idle");
    let d = one_error(&with_base(
        "[api]\nrate_limit = { requests_per_second = 5, burst = 0 }\n",
    ));
    assert_eq!(d.key, "api.rate_limit.burst");
    let d = one_error(&with_base("[api]\nrate_limit = { rps = 5 }\n"));
    assert_eq!(d.key, "api.rate_limit.rps");
}

#[test]
fn a_users_file_lets_the_api_listen_beyond_loopback() {
    let d = one_error(&with_base("[api]\nlisten = \"0.0.0.0:8080\"\n"));
    assert_eq!(d.key, "api.listen");
    assert!(
        load(&with_base(
            "[api]\nlisten = \"0.0.0.0:8080\"\nusers = \"users.toml\"\n"
        ))
        .is_ok()
    );
}
