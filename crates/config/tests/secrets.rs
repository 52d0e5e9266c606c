//! Secrets by reference: `[api] token` and resolving `env:` and `file:` references.

mod common;

use std::path::Path;

use backplane_config::{Secret, SecretError};
use common::{NEXT, assert_at, catalog, one_error, with_base};

#[test]
fn api_token_keeps_the_reference_not_the_value() {
    let plan = common::load(&with_base("[api]\ntoken = \"env:PATH\"\n")).unwrap();
    let token = plan.api.token.unwrap();
    assert_eq!(token.reference(), "env:PATH");
    assert_eq!(format!("{token:?}"), "Secret(\"env:PATH\")");
}

#[test]
fn env_secret_resolves_to_the_variable() {
    // Tests cannot set variables (`set_var` is unsafe), so read one every test run has.
    let expected = std::env::var("PATH").unwrap();
    let secret = Secret::parse("env:PATH", Path::new(".")).unwrap();
    assert_eq!(secret.resolve().unwrap(), expected);
}

#[test]
fn missing_env_variable_is_named_in_the_error() {
    let secret = Secret::parse("env:BACKPLANE_TEST_SURELY_UNSET_42", Path::new(".")).unwrap();
    let err = secret.resolve().unwrap_err();
    assert!(matches!(err, SecretError::EnvMissing { .. }));
    assert!(
        err.to_string().contains("BACKPLANE_TEST_SURELY_UNSET_42"),
        "{err}"
    );
}

#[test]
fn file_secret_resolves_relative_to_the_config_and_drops_one_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.txt"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("two.txt"), "line\n\n").unwrap();
    let config = with_base("[api]\ntoken = \"file:token.txt\"\n");
    let plan = backplane_config::load_str(&config, &dir.path().join("plant.toml"), &catalog()).unwrap();
    assert_eq!(plan.api.token.unwrap().resolve().unwrap(), "s3cret");
    let two = Secret::parse("file:two.txt", dir.path()).unwrap();
    assert_eq!(two.resolve().unwrap(), "line\n");
}

#[test]
fn unreadable_secret_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let secret = Secret::parse("file:missing.txt", dir.path()).unwrap();
    let err = secret.resolve().unwrap_err();
    assert!(matches!(err, SecretError::FileUnreadable { .. }));
    assert!(
        err.to_string()
            .contains(&dir.path().join("missing.txt").display().to_string()),
        "{err}"
    );
}

#[test]
fn empty_secret_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.txt"), "\n").unwrap();
    let secret = Secret::parse("file:empty.txt", dir.path()).unwrap();
    assert!(matches!(secret.resolve(), Err(SecretError::Empty { .. })));
}

#[test]
fn rejects_reference_with_unknown_scheme() {
    let d = one_error(&with_base("[api]\ntoken = \"vault:api\"\n"));
    assert!(
        d.message.starts_with("a secret must be a reference"),
        "{}",
        d.message
    );
    assert_at(&d, NEXT + 1, 9, "api.token");
}

#[test]
fn an_inline_secret_is_never_echoed_in_a_diagnostic() {
    let text = with_base("[api]\ntoken = \"hunter2-very-secret\"\n");
    let diagnostics = common::load(&text).unwrap_err();
    let rendered: String = diagnostics.iter().map(|d| d.render(Some(&text))).collect();
    assert!(rendered.contains("a secret must be a reference"), "{rendered}");
    assert!(rendered.contains("token = \"*******************\""), "{rendered}");
    assert!(!rendered.contains("hunter2"), "{rendered}");
}
