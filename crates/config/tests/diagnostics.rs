//! One test per class of configuration error: each checks the message, where it points
//! (line:column) and the key it names.

mod common;

use common::{BASE, NEXT, assert_at, errors, load, one_error, with_base};

/// An equipment asset `line-1/filler` of model `Filler` on source `plc`, with `binding`
/// on line `NEXT + 4`.
fn filler(binding: &str) -> String {
    with_base(&format!(
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nsource = \"plc\"\n{binding}\n"
    ))
}

#[test]
fn base_configuration_is_valid() {
    assert_eq!(BASE.lines().count() + 1, NEXT);
    let plan = load(BASE).unwrap();
    assert_eq!(plan.assets.len(), 3);
    let plan = load(&filler("bindings.speed = { address = \"hr:1\" }")).unwrap();
    assert_eq!(plan.asset("acme/plant/line-1/filler").unwrap().bindings.len(), 1);
}

#[test]
fn reports_toml_syntax_errors_at_their_position() {
    let d = one_error("[namespace]\nenterprise = \"acme\nsite = \"plant\"\n");
    assert!(d.message.starts_with("TOML syntax error"), "{}", d.message);
    assert_at(&d, 2, 19, "");
}

#[test]
fn rejects_unknown_top_level_key_with_suggestion() {
    let d = one_error(&with_base("[gatway]\nname = \"edge\"\n"));
    assert_eq!(d.message, "unknown top-level key `gatway`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `gateway`?"));
    assert_at(&d, NEXT, 2, "gatway");
}

#[test]
fn rejects_unknown_key_in_section_with_suggestion() {
    let d = one_error(&with_base("[api]\nlistn = \"127.0.0.1:9000\"\n"));
    assert_eq!(d.message, "unknown key `listn` in api");
    assert_eq!(d.hint.as_deref(), Some("did you mean `listen`?"));
    assert_at(&d, NEXT + 1, 1, "api.listn");
}

#[test]
fn lists_accepted_keys_when_no_key_is_close() {
    let d = one_error(&with_base("[api]\nbody_limit = 100000\n"));
    assert_eq!(
        d.hint.as_deref(),
        Some(
            "accepted keys: listen, max_body_bytes, max_connections, header_read_timeout, hosts, token, users, session_idle, session_lifetime, rate_limit, tls"
        )
    );
    assert_at(&d, NEXT + 1, 1, "api.body_limit");
}

#[test]
fn rejects_unknown_key_in_binding_with_suggestion() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", scael = { gain = 2 } }",
    ));
    assert_eq!(d.message, "unknown key `scael` in assets[1].bindings.speed");
    assert_eq!(d.hint.as_deref(), Some("did you mean `scale`?"));
    assert_at(&d, NEXT + 4, 38, "assets[1].bindings.speed.scael");
}

#[test]
fn rejects_unknown_key_left_unread_by_the_source_kind() {
    let d = one_error(&with_base(
        "[[sources]]\nname = \"plc-2\"\nkind = \"simulator\"\nperod = \"1s\"\n",
    ));
    assert_eq!(d.message, "unknown key `perod` in sources[1]");
    assert_eq!(d.hint.as_deref(), Some("did you mean `period`?"));
    assert_at(&d, NEXT + 3, 1, "sources[1].perod");
}

#[test]
fn reports_missing_required_key_at_the_table_header() {
    let d = one_error(&with_base("[[sources]]\nkind = \"simulator\"\n"));
    assert_eq!(d.message, "missing required key `name`");
    assert_at(&d, NEXT, 1, "sources[1].name");
}

#[test]
fn reports_missing_namespace_at_the_start_of_the_file() {
    let d = one_error("[gateway]\nname = \"edge\"\n");
    assert_eq!(d.message, "missing required key `namespace`");
    assert_at(&d, 1, 1, "namespace");
}

#[test]
fn rejects_unknown_source_with_suggestion() {
    let text = with_base("[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nsource = \"plc-1\"\n");
    let d = one_error(&text);
    assert_eq!(d.message, "unknown source `plc-1`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `plc`?"));
    assert_at(&d, NEXT + 3, 10, "assets[1].source");
}

#[test]
fn requires_a_source_for_every_binding() {
    let text = with_base(
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nbindings.speed = { address = \"hr:1\" }\n",
    );
    let d = one_error(&text);
    assert_eq!(d.message, "no source for binding `speed`");
    assert_at(&d, NEXT + 3, 18, "assets[1].bindings.speed.source");
}

#[test]
fn rejects_unknown_model_with_suggestion() {
    let d = one_error(&with_base(
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filer\"\n",
    ));
    assert_eq!(d.message, "unknown model `Filer`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `Filler`?"));
    assert_at(&d, NEXT + 2, 9, "assets[1].model");
}

#[test]
fn rejects_binding_of_unknown_attribute_with_suggestion() {
    let d = one_error(&filler("bindings.sped = { address = \"hr:1\" }"));
    assert_eq!(d.message, "unknown attribute `sped` of model `Filler`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `speed`?"));
    assert_at(&d, NEXT + 4, 10, "assets[1].bindings.sped");
}

#[test]
fn rejects_unknown_source_kind_listing_the_known_ones() {
    let d = one_error(&with_base(
        "[[sinks]]\nname = \"out\"\nkind = \"csv\"\npath = \"x.csv\"\n",
    ));
    assert_eq!(d.message, "unknown sink kind `csv`");
    assert_eq!(
        d.hint.as_deref(),
        Some("known sink kinds: historian, jsonl, network, opcua-server")
    );
    assert_at(&d, NEXT + 2, 8, "sinks[0].kind");
    let d = one_error(&with_base(
        "[[sources]]\nname = \"plc-2\"\nkind = \"simulater\"\n",
    ));
    assert_eq!(d.message, "unknown source kind `simulater`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `simulator`?"));
}

#[test]
fn rejects_map_on_a_float_attribute() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", map = { 0 = \"idle\" } }",
    ));
    assert_eq!(
        d.message,
        "type mismatch: `map` produces a string, but attribute `speed` is float"
    );
    assert_at(&d, NEXT + 4, 44, "assets[1].bindings.speed.map");
}

#[test]
fn rejects_scale_on_a_string_attribute() {
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", scale = { gain = 2 } }",
    ));
    assert_eq!(
        d.message,
        "type mismatch: `scale` needs a number, but attribute `state` is string"
    );
    assert_at(&d, NEXT + 4, 46, "assets[1].bindings.state.scale");
}

#[test]
fn rejects_bit_on_a_non_bool_attribute() {
    let d = one_error(&filler("bindings.count = { address = \"hr:1\", bit = 3 }"));
    assert_eq!(
        d.message,
        "type mismatch: `bit` produces a bool, but attribute `count` is uint"
    );
    assert_at(&d, NEXT + 4, 44, "assets[1].bindings.count.bit");
}

#[test]
fn rejects_map_label_missing_from_the_enum() {
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", map = { 0 = \"idle\", 1 = \"runing\" } }",
    ));
    assert_eq!(d.message, "unknown label `runing` for attribute `state`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `running`?"));
    assert_at(&d, NEXT + 4, 62, "assets[1].bindings.state.map.1");
}

#[test]
fn rejects_conversion_between_units_of_different_quantities() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", unit = \"degF\" }",
    ));
    assert_eq!(
        d.message,
        "unit mismatch: raw unit `degF` cannot be converted to `bottle/min` (attribute `speed`)"
    );
    assert_at(&d, NEXT + 4, 45, "assets[1].bindings.speed.unit");
}

#[test]
fn rejects_unknown_unit_with_suggestion() {
    let d = one_error(&filler(
        "bindings.temperature = { address = \"hr:1\", unit = \"degK\" }",
    ));
    assert_eq!(d.message, "unknown unit `degK`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `degC`?"));
    assert_at(&d, NEXT + 4, 51, "assets[1].bindings.temperature.unit");
    let text = BASE.replace("unit = \"degC\" }", "unit = \"degc\" }");
    let d = one_error(&text);
    assert_eq!(d.message, "unknown unit `degc`");
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean `degC`? (symbols are case-sensitive)")
    );
    assert_at(&d, 11, 40, "models.Filler.attributes.temperature.unit");
}

#[test]
fn rejects_duplicate_asset_path_naming_the_first() {
    let d = one_error(&with_base("[[assets]]\npath = \"line-1\"\n"));
    assert_eq!(d.message, "duplicate asset path `line-1`");
    assert_eq!(d.hint.as_deref(), Some("first declared at test.toml:21"));
    assert_at(&d, NEXT + 1, 8, "assets[1].path");
}

#[test]
fn rejects_duplicate_source_name() {
    let d = one_error(&with_base("[[sources]]\nname = \"plc\"\nkind = \"simulator\"\n"));
    assert_eq!(d.message, "duplicate source name `plc`");
    assert_eq!(
        d.hint.as_deref(),
        Some("first defined at test.toml:15:8; source names must be unique")
    );
    assert_at(&d, NEXT + 1, 8, "sources[1].name");
}

#[test]
fn rejects_asset_path_segment_that_is_not_a_slug() {
    let d = one_error(&with_base("[[assets]]\npath = \"line-1/Filler_2\"\n"));
    assert!(
        d.message
            .starts_with("invalid asset path `line-1/Filler_2`: `Filler_2` is not a slug"),
        "{}",
        d.message
    );
    assert_at(&d, NEXT + 1, 8, "assets[1].path");
}

#[test]
fn rejects_source_name_that_is_not_a_slug() {
    let d = one_error(&with_base(
        "[[sources]]\nname = \"PLC_2\"\nkind = \"simulator\"\n",
    ));
    assert!(
        d.message
            .starts_with("invalid source name: `PLC_2` is not a slug"),
        "{}",
        d.message
    );
    assert_at(&d, NEXT + 1, 8, "sources[1].name");
}

#[test]
fn rejects_asset_whose_parent_is_not_declared() {
    let d = one_error(&with_base("[[assets]]\npath = \"line-2/filler\"\n"));
    assert_eq!(
        d.message,
        "parent asset `line-2` of `line-2/filler` is not declared"
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("declare it: [[assets]] path = \"line-2\"")
    );
    assert_at(&d, NEXT + 1, 8, "assets[1].path");
}

#[test]
fn rejects_child_not_below_its_parent_level() {
    let d = one_error(&with_base(
        "[[assets]]\npath = \"line-1/cell\"\nlevel = \"area\"\n",
    ));
    assert_eq!(
        d.message,
        "level `area` of `line-1/cell` is not below its parent `line-1` (area)"
    );
    assert_at(&d, NEXT + 2, 9, "assets[1].level");
}

#[test]
fn rejects_bare_number_as_duration() {
    let d = one_error(&BASE.replace("period = \"1s\"", "period = \"5\""));
    assert_eq!(d.message, "invalid duration `5`: a bare number has no unit");
    assert_eq!(d.hint.as_deref(), Some("write \"5s\" or \"500ms\""));
    assert_at(&d, 17, 10, "sources[0].period");
    let d = one_error(&BASE.replace("period = \"1s\"", "period = 5"));
    assert_eq!(d.message, "expected a duration string, found an integer");
    assert_at(&d, 17, 10, "sources[0].period");
}

#[test]
fn rejects_address_the_source_kind_does_not_accept() {
    let d = one_error(&filler("bindings.speed = { address = \"hr:9\" }"));
    assert_eq!(d.message, "the simulator has no signal `hr:9`");
    assert_eq!(d.hint.as_deref(), Some("signals: hr:1, hr:2, hr:3"));
    assert_at(&d, NEXT + 4, 30, "assets[1].bindings.speed.address");
}

#[test]
fn rejects_range_whose_minimum_is_not_below_its_maximum() {
    let d = one_error(&BASE.replace("range = [0, 600]", "range = [600, 0]"));
    assert_eq!(d.message, "range minimum 600 is not below its maximum 0");
    assert_at(&d, 9, 56, "models.Filler.attributes.speed.range");
}

#[test]
fn rejects_percent_deadband_on_attribute_without_range() {
    let d = one_error(&filler(
        "bindings.temperature = { address = \"hr:1\", deadband = { percent = 1 } }",
    ));
    assert_eq!(
        d.message,
        "deadband `percent` needs a `range` on attribute `temperature`"
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("add `range = [min, max]` to `temperature` in model `Filler`, or use `absolute`")
    );
    assert_at(
        &d,
        NEXT + 4,
        67,
        "assets[1].bindings.temperature.deadband.percent",
    );
}

#[test]
fn rejects_inline_secret_without_repeating_it() {
    let d = one_error(&with_base("[api]\ntoken = \"hunter2\"\n"));
    assert!(
        d.message.starts_with("a secret must be a reference"),
        "{}",
        d.message
    );
    assert!(!d.message.contains("hunter2") && !d.hint.as_deref().unwrap_or("").contains("hunter2"));
    assert!(d.hint.as_deref().unwrap_or("").contains("env:NAME"));
    assert_at(&d, NEXT + 1, 9, "api.token");
}

#[test]
fn rejects_bindings_on_asset_without_model() {
    let d = one_error(&with_base(
        "[[assets]]\npath = \"line-1/filler\"\nsource = \"plc\"\nbindings.speed = { address = \"hr:1\" }\n",
    ));
    assert_eq!(d.message, "`bindings` needs a `model`");
    assert_at(&d, NEXT + 3, 1, "assets[1].bindings");
}

#[test]
fn reports_every_error_of_a_file_together() {
    let text = with_base(concat!(
        "[[sources]]\n",
        "name = \"plc\"\n", // duplicate source name
        "kind = \"simulator\"\n",
        "perod = \"1s\"\n", // unknown key
        "[[assets]]\n",
        "path = \"line-1/filler\"\n",
        "model = \"Filer\"\n", // unknown model
        "[[assets]]\n",
        "path = \"line-3/filler\"\n", // undeclared parent
        "[[assets]]\n",
        "path = \"line-1/cell\"\n",
        "level = \"shelf\"\n", // unknown level
    ));
    let diagnostics = errors(&text);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "duplicate source name `plc`",
            "unknown key `perod` in sources[1]",
            "unknown model `Filer`",
            "parent asset `line-3` of `line-3/filler` is not declared",
            "unknown level `shelf`",
        ]
    );
    let lines: Vec<usize> = diagnostics.iter().map(|d| d.location.line).collect();
    assert_eq!(lines, [NEXT + 1, NEXT + 3, NEXT + 6, NEXT + 8, NEXT + 11]);
}

#[test]
fn display_prints_position_source_line_key_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.toml");
    let text = with_base("[[sources]]\nname = \"plc-2\"\nkind = \"simulator\"\nperod = \"1s\"\n");
    std::fs::write(&path, &text).unwrap();
    let diagnostics = backplane_config::load(&path, &common::catalog()).unwrap_err();
    let shown = diagnostics[0].to_string();
    let expected = format!(
        "{}:26:1: error: unknown key `perod` in sources[1]\n   26 | perod = \"1s\"\n      | ^^^^^\n   = key: sources[1].perod\n   = hint: did you mean `period`?",
        path.display()
    );
    assert_eq!(shown, expected);
}

#[test]
fn reports_unreadable_main_file() {
    let diagnostics =
        backplane_config::load(std::path::Path::new("/nonexistent/x.toml"), &common::catalog()).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0]
            .message
            .starts_with("cannot read configuration file"),
        "{}",
        diagnostics[0].message
    );
    assert_at(&diagnostics[0], 1, 1, "");
}

#[test]
fn rejects_word_order_without_decode() {
    let d = one_error(&filler(
        "bindings.count = { address = \"hr:1\", word_order = \"CDAB\" }",
    ));
    assert_eq!(d.message, "`word_order` applies only with `decode`");
    assert_at(&d, NEXT + 4, 51, "assets[1].bindings.count.word_order");
}

#[test]
fn rejects_scale_mixing_gain_with_ranges() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", scale = { gain = 2, raw = [0, 10], eng = [0, 1] } }",
    ));
    assert_eq!(d.message, "`scale` mixes `gain`/`offset` with `raw`/`eng`");
    assert_at(&d, NEXT + 4, 64, "assets[1].bindings.speed.scale.raw");
}

#[test]
fn rejects_scale_over_an_empty_raw_range() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", scale = { raw = [5, 5], eng = [0, 1] } }",
    ));
    assert_eq!(d.message, "`raw` must span a range: its two ends are equal");
    assert_at(&d, NEXT + 4, 54, "assets[1].bindings.speed.scale.raw");
}

#[test]
fn rejects_map_key_that_is_not_an_integer() {
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", map = { idle = \"idle\" } }",
    ));
    assert_eq!(d.message, "map key `idle` is not an integer");
    assert_at(&d, NEXT + 4, 46, "assets[1].bindings.state.map.idle");
}

#[test]
fn rejects_deadband_with_both_forms_or_none() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", deadband = { absolute = 1, percent = 1 } }",
    ));
    assert_eq!(
        d.message,
        "a deadband is either `absolute` or `percent`, not both"
    );
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", deadband = { absolute = 0 } }",
    ));
    assert_eq!(d.message, "deadband `absolute` must be greater than 0, found 0");
    let d = one_error(&filler("bindings.speed = { address = \"hr:1\", deadband = {} }"));
    assert_eq!(d.message, "a deadband needs `absolute` or `percent`");
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", deadband = { absolute = 1 } }",
    ));
    assert_eq!(
        d.message,
        "type mismatch: a deadband needs a number, but attribute `state` is string"
    );
}

#[test]
fn rejects_unit_and_range_on_non_numeric_attributes() {
    let text = BASE.replace(
        "running = { type = \"bool\" }",
        "running = { type = \"bool\", unit = \"%\", range = [0, 1] }",
    );
    let messages: Vec<String> = errors(&text).into_iter().map(|d| d.message).collect();
    assert_eq!(
        messages,
        [
            "a unit is only allowed on numeric attributes, and `running` is bool",
            "a range is only allowed on numeric attributes, and `running` is bool",
        ]
    );
    let d = one_error(&BASE.replace(
        "count = { type = \"uint\"",
        "count = { type = \"uint\", enum = [\"a\"]",
    ));
    assert_eq!(
        d.message,
        "`enum` is only allowed on string attributes, and `count` is uint"
    );
}

#[test]
fn rejects_unknown_attribute_type_and_bad_names() {
    let d = one_error(&BASE.replace("type = \"bool\"", "type = \"boolean\""));
    assert_eq!(d.message, "unknown type `boolean`");
    assert_at(&d, 12, 20, "models.Filler.attributes.running.type");
    let d = one_error(&BASE.replace("running = {", "Running = {"));
    assert!(
        d.message.starts_with("invalid attribute name: `Running`"),
        "{}",
        d.message
    );
    let d = one_error(
        &BASE
            .replace("[models.Filler]", "[models.filler]")
            .replace("[models.Filler.attributes]", "[models.filler.attributes]"),
    );
    assert_eq!(d.message, "model name `filler` is not PascalCase");
    assert_at(&d, 5, 9, "models.filler");
}

#[test]
fn rejects_unknown_context_field_and_level() {
    let d = one_error(&with_base(
        "[[assets]]\npath = \"line-2\"\ncontext = { shfit = \"A\" }\n",
    ));
    assert_eq!(d.message, "unknown context field `shfit`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `shift`?"));
    assert_at(&d, NEXT + 2, 13, "assets[1].context.shfit");
    let d = one_error(&with_base("[[assets]]\npath = \"line-2\"\nlevel = \"lien\"\n"));
    assert_eq!(d.message, "unknown level `lien`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `line`?"));
}

#[test]
fn rejects_bad_gateway_api_and_namespace_values() {
    let text = BASE.replace("site = \"plant\"", "site = \"Plant A\"")
        + "[gateway]\nname = \"Edge 1\"\n\n[api]\nlisten = \"localhost\"\nmax_body_bytes = 10\n";
    let diagnostics = errors(&text);
    let got: Vec<(&str, usize)> = diagnostics
        .iter()
        .map(|d| (d.key.as_str(), d.location.line))
        .collect();
    assert_eq!(
        got,
        [
            ("namespace.site", 3),
            ("gateway.name", NEXT + 1),
            ("api.listen", NEXT + 4),
            ("api.max_body_bytes", NEXT + 5)
        ]
    );
    assert_eq!(diagnostics[2].message, "invalid listen address `localhost`");
    assert!(diagnostics[2].hint.as_deref().unwrap().contains("127.0.0.1:8080"));
}

#[test]
fn disabled_entries_are_validated_and_kept() {
    let plan = load(&with_base(
        "[[sinks]]\nname = \"out\"\nkind = \"jsonl\"\nenabled = false\n",
    ))
    .unwrap();
    assert!(!plan.sinks[0].enabled);
    assert!(plan.sources[0].enabled);
}

#[test]
fn binding_source_overrides_the_asset_source() {
    let text = with_base(concat!(
        "[[sources]]\nname = \"plc-2\"\nkind = \"simulator\"\nsignals = { \"x\" = {} }\n",
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nsource = \"plc\"\n",
        "bindings.speed = { address = \"hr:1\" }\n",
        "bindings.count = { address = \"x\", source = \"plc-2\" }\n",
    ));
    let plan = load(&text).unwrap();
    let filler = plan.asset("acme/plant/line-1/filler").unwrap();
    let sources: Vec<(&str, &str)> = filler
        .bindings
        .iter()
        .map(|b| (&*b.attribute, &*b.source))
        .collect();
    assert_eq!(sources, [("speed", "plc"), ("count", "plc-2")]);
}

#[test]
fn default_levels_follow_depth_and_model() {
    let text = with_base(concat!(
        "[[assets]]\npath = \"line-1/cell-1\"\nlevel = \"line\"\n",
        "[[assets]]\npath = \"line-1/cell-1/station\"\n",
        "[[assets]]\npath = \"line-1/cell-1/station/robot\"\n",
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\n",
    ));
    let plan = load(&text).unwrap();
    let levels: Vec<String> = plan.assets.iter().skip(2).map(|a| a.level.to_string()).collect();
    assert_eq!(levels, ["area", "line", "cell", "equipment", "equipment"]);
}

#[test]
fn children_declared_before_parents_are_placed_after_them() {
    let text = BASE.replace(
        "[[assets]]\npath = \"line-1\"\n",
        "[[assets]]\npath = \"line-1/filler\"\n[[assets]]\npath = \"line-1\"\n",
    );
    let plan = load(&text).unwrap();
    let paths: Vec<&str> = plan.assets.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "acme",
            "acme/plant",
            "acme/plant/line-1",
            "acme/plant/line-1/filler"
        ]
    );
}

#[test]
fn rejects_asset_path_with_empty_segment() {
    let d = one_error(&with_base("[[assets]]\npath = \"line-1//filler\"\n"));
    assert_eq!(
        d.message,
        "asset path `line-1//filler` has an empty segment: no leading, trailing or double `/`"
    );
    assert_at(&d, NEXT + 1, 8, "assets[1].path");
}

#[test]
fn rejects_model_without_attributes() {
    let d = one_error(&with_base("[models.Empty]\nattributes = {}\n"));
    assert_eq!(d.message, "model `Empty` has no attributes");
    assert_at(&d, NEXT + 1, 14, "models.Empty.attributes");
}

/// A kind that fails without saying why.
struct Silent;

impl backplane_config::KindSpec for Silent {
    fn describe(&self) -> &'static str {
        "fails silently (test)"
    }

    fn parse(&self, _table: &mut backplane_config::Table<'_>) -> Option<backplane_config::Settings> {
        None
    }
}

#[test]
fn kind_failing_without_a_diagnostic_still_fails_the_load() {
    let mut catalog = common::catalog();
    catalog.add_sink("silent", std::sync::Arc::new(Silent));
    let text = with_base("[[sinks]]\nname = \"out\"\nkind = \"silent\"\n");
    let diagnostics =
        backplane_config::load_str(&text, std::path::Path::new("test.toml"), &catalog).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        diagnostics[0].message,
        "the `silent` settings of this sink are invalid"
    );
    assert_at(&diagnostics[0], NEXT + 2, 8, "sinks[0].kind");
}

#[test]
fn rejects_decode_into_a_string_attribute_without_map() {
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", decode = \"f32\" }",
    ));
    assert!(d.message.contains("`decode` produces a number"), "{}", d.message);
    assert_eq!(d.key, "assets[1].bindings.state.decode");
}

#[test]
fn rejects_scale_ranges_that_give_no_usable_gain() {
    let d = one_error(&filler(
        "bindings.speed = { address = \"hr:1\", scale = { raw = [0, 100], eng = [5, 5] } }",
    ));
    assert!(d.message.contains("no usable gain"), "{}", d.message);
    assert_eq!(d.key, "assets[1].bindings.speed.scale.raw");
}

#[test]
fn rejects_duplicate_map_codes() {
    let d = one_error(&filler(
        "bindings.state = { address = \"hr:1\", map = { 1 = \"idle\", 01 = \"running\" } }",
    ));
    assert_eq!(d.message, "map code 1 is given twice");
}

#[test]
fn rejects_empty_or_multiline_context_values() {
    for value in ["\"\"", "\"WO-1\\nWO-2\""] {
        let d = one_error(&with_base(&format!(
            "[[assets]]\npath = \"line-2\"\ncontext = {{ work_order = {value} }}\n"
        )));
        assert!(
            d.message.contains("no control characters"),
            "{value}: {}",
            d.message
        );
        assert_eq!(d.key, "assets[1].context.work_order");
    }
}

#[test]
fn rejects_an_api_open_to_the_network_without_a_token() {
    let d = one_error(&with_base("[api]\nlisten = \"0.0.0.0:8080\"\n"));
    assert!(d.message.contains("with no `token`"), "{}", d.message);
    assert_eq!(d.key, "api.listen");
    assert!(
        load(&with_base(
            "[api]\nlisten = \"0.0.0.0:8080\"\ntoken = \"env:BACKPLANE_TEST_TOKEN\"\n"
        ))
        .is_ok()
    );
}

#[test]
fn rejects_request_body_limits_above_16_mib() {
    let d = one_error(&with_base("[api]\nmax_body_bytes = 1000000000\n"));
    assert!(d.message.contains("must be from"), "{}", d.message);
}

#[test]
fn the_runtime_threads_are_one_per_cpu_unless_workers_says_from_1_to_256() {
    assert_eq!(load(BASE).unwrap().gateway.workers, None);
    let one = load(&(BASE.to_owned() + "[gateway]\nworkers = 1\n")).unwrap();
    assert_eq!(one.gateway.workers, Some(1));
    for bad in ["0", "257", "-1"] {
        let diagnostics = errors(&(BASE.to_owned() + &format!("[gateway]\nworkers = {bad}\n")));
        assert_eq!(diagnostics.len(), 1, "workers = {bad}: {diagnostics:?}");
        assert_eq!(diagnostics[0].key, "gateway.workers");
    }
}
