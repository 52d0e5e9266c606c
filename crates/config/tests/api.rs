//! `[api]`: the bounds on what clients can hold open.

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
