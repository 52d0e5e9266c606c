//! `[models.NAME.writes.ATTRIBUTE]`: the machine-write allowlist is read into the plan,
//! and every bad rule is reported where it is written (file:line:column, key).

mod common;

use std::time::Duration;

use backplane_config::CompareOp;
use backplane_security::Role;
use common::{NEXT, assert_at, errors, load, with_base};

#[test]
fn no_write_rules_means_nothing_is_writable() {
    let plan = load(&with_base("")).unwrap();
    assert!(plan.writes.is_empty());
    assert!(plan.write_rule("Filler", "speed").is_none());
}

#[test]
fn a_rule_reads_role_limits_interlocks_and_defaults() {
    let plan = load(&with_base(
        "[models.Filler.writes.speed]\nrole = \"operator\"\nmax_step = 50.0\nmin_interval = \"2s\"\ninterlocks = [\"state == 'idle'\", \"temperature < 5\"]\n\
         [models.Filler.writes.running]\n",
    ))
    .unwrap();
    let speed = plan.write_rule("Filler", "speed").unwrap();
    assert_eq!(speed.role, Role::Operator);
    assert_eq!(speed.max_step, Some(50.0));
    assert_eq!(speed.min_interval, Some(Duration::from_secs(2)));
    assert_eq!(speed.interlocks.len(), 2);
    assert_eq!(speed.interlocks[1].op, CompareOp::Lt);
    assert_eq!(speed.interlocks[0].to_string(), "state == 'idle'");
    assert!(speed.verify);
    let running = plan.write_rule("Filler", "running").unwrap();
    assert_eq!(
        running.role,
        Role::Engineer,
        "machine writes default to engineers"
    );
    assert_eq!(running.interlock_max_age, Duration::from_secs(10));
}

#[test]
fn rules_may_stand_alone_in_another_section_of_the_file() {
    let plan = load(&with_base(
        "[models.Filler.writes]\nspeed = { role = \"admin\" }\n",
    ))
    .unwrap();
    assert_eq!(plan.write_rule("Filler", "speed").unwrap().role, Role::Admin);
}

#[test]
fn bad_rules_are_reported_at_their_line_and_key() {
    let found = errors(&with_base(
        "[models.Filler.writes.sped]\n\
         [models.Filler.writes.speed]\nrole = \"superuser\"\nmax_step = -1\ninterlocks = [\"stat == 'idle'\", \"state < 'idle'\", \"temperature 5\"]\nspeedy = 1\n\
         [models.Filler.writes.state]\nmax_step = 1\n",
    ));
    let find = |needle: &str| {
        found
            .iter()
            .find(|d| d.message.contains(needle))
            .unwrap_or_else(|| panic!("no diagnostic containing `{needle}` in {found:#?}"))
    };
    let d = find("unknown attribute `sped`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `speed`?"));
    assert_at(d, NEXT, 23, "models.Filler.writes.sped");
    assert_at(
        find("unknown role `superuser`"),
        NEXT + 2,
        8,
        "models.Filler.writes.speed.role",
    );
    assert_at(
        find("`max_step` must be a number above zero"),
        NEXT + 3,
        12,
        "models.Filler.writes.speed.max_step",
    );
    let d = find("interlock `stat == 'idle'`: unknown attribute `stat`");
    assert_eq!(d.location.line, NEXT + 4);
    find("interlock `state < 'idle'`: `<` only compares numbers");
    find("interlock `temperature 5`: no comparison operator");
    assert_at(
        find("unknown key `speedy`"),
        NEXT + 5,
        1,
        "models.Filler.writes.speed.speedy",
    );
    assert_at(
        find("`max_step` is only allowed on numeric attributes"),
        NEXT + 7,
        12,
        "models.Filler.writes.state.max_step",
    );
    assert_eq!(found.len(), 8, "{found:#?}");
}

#[test]
fn an_asset_narrows_its_models_allowlist_and_never_widens_it() {
    let rules = "[models.Filler.writes.speed]\n[models.Filler.writes.running]\n";
    let asset = |writes: &str| {
        format!(
            "{rules}[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nsource = \"plc\"\nwrites = {writes}\n"
        )
    };
    let plan = load(&with_base(&asset("[\"speed\"]"))).unwrap();
    let filler = plan.asset("acme/plant/line-1/filler").unwrap();
    assert_eq!(filler.writes.as_deref(), Some(&["speed".to_owned()][..]));
    let plan = load(&with_base(&asset("false"))).unwrap();
    assert_eq!(
        plan.asset("acme/plant/line-1/filler").unwrap().writes.as_deref(),
        Some(&[][..])
    );
    assert_eq!(plan.asset("acme/plant/line-1").unwrap().writes, None);

    let line = NEXT + 6;
    let d = errors(&with_base(&asset("[\"count\"]")));
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(
        d[0].message,
        "`count` is not in the write allowlist of model `Filler`"
    );
    assert_eq!(d[0].location.line, line);
    let d = errors(&with_base(&asset("true")));
    assert!(d[0].message.contains("cannot widen"), "{d:#?}");
    let d = errors(&with_base(&asset("[\"sped\"]")));
    assert_eq!(d[0].hint.as_deref(), Some("did you mean `speed`?"));
}
