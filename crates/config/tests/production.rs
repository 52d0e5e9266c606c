//! The production sections: `[calendar]`, `[downtime_reasons]`,
//! `[models.NAME.production]`, `[forms.NAME]` and `[[context_rules]]` load into
//! `plan.production`, and each class of error points at its line and key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_config::production::{Days, FieldType, RawKey, StateModel};
use backplane_model::ContextField;
use common::{BASE, NEXT, assert_at, load, one_error, with_base};

/// `BASE` plus an equipment asset `line-1/filler` of model `Filler` (lines NEXT to
/// NEXT + 2), then `extra` from line NEXT + 4.
fn with_filler(extra: &str) -> String {
    with_base(&format!(
        "[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\n\n{extra}"
    ))
}

/// The first line of `extra` in [`with_filler`].
const X: usize = NEXT + 4;

const VALID: &str = r#"[calendar]
utc_offset = "+01:00"
shifts = [
  { name = "A", start = "06:00", end = "14:00" },
  { name = "B", start = "14:00", end = "22:00" },
  { name = "C", start = "22:00", end = "06:00", days = ["mon", "tue", "wed", "thu", "fri"] },
]
planned_stops = [{ name = "cleaning", start = "05:30", end = "06:00" }]

[downtime_reasons]
mechanical = { description = "Mechanical", reasons = { jam = "Bottle jam", changeover = { description = "Format changeover", planned = true, reasons = { cip = "Cleaning in place" } } } }
material = "Material shortage"

[models.Filler.production]
state = { attribute = "state", map = { running = "execute", idle = "idle" } }
counts = { good = { attribute = "count", rollover = 65536 } }
ideal_rate = "600/min"
reason_codes = { attribute = "count", map = { 17 = "mechanical/jam" } }

[forms.start-up]
description = "Filler start-up checklist"
assets = ["line-1"]
fields.guards_closed = { type = "bool", required = true, label = "Guards closed" }
fields.fill_volume = { type = "float", unit = "mL", range = [995, 1010] }
fields.result = { type = "choice", choices = ["ok", "not ok"] }

[[context_rules]]
asset = "line-1/filler"
attribute = "temperature"
field = "batch"
format = "B{value}"
material = "milk"
"#;

#[test]
fn production_sections_load_into_the_plan() {
    let plan = load(&with_filler(VALID)).unwrap();
    let spec = &plan.production;

    let calendar = spec.calendar.as_ref().unwrap();
    assert_eq!(calendar.utc_offset_minutes, 60);
    let shifts: Vec<(&str, u16, u16, u32)> = calendar
        .shifts
        .iter()
        .map(|s| (s.name.as_str(), s.start_minute, s.end_minute, s.length_minutes()))
        .collect();
    assert_eq!(
        shifts,
        [("A", 360, 840, 480), ("B", 840, 1320, 480), ("C", 1320, 360, 480)]
    );
    assert_eq!(calendar.shifts[2].days, Days(0b001_1111));
    assert_eq!(calendar.planned_stops[0].days, Days::ALL);

    // Parents before children; `planned` is inherited down the tree.
    let reasons: Vec<(&str, bool)> = spec
        .reasons
        .iter()
        .map(|r| (r.code.as_str(), r.planned))
        .collect();
    assert_eq!(
        reasons,
        [
            ("mechanical", false),
            ("mechanical/jam", false),
            ("mechanical/changeover", true),
            ("mechanical/changeover/cip", true),
            ("material", false),
        ]
    );
    assert_eq!(
        spec.reason("material").unwrap().description.as_deref(),
        Some("Material shortage")
    );

    let filler = spec.model("Filler").unwrap();
    let state = filler.state.as_ref().unwrap();
    assert_eq!(state.model, StateModel::Packml);
    assert_eq!(state.map[0], (RawKey::Text("running".into()), "execute".into()));
    let good = filler.counts.as_ref().unwrap().good.as_ref().unwrap();
    assert_eq!((good.attribute.as_str(), good.rollover), ("count", Some(65536)));
    assert_eq!(filler.ideal_rate.unwrap().as_per_minute(), 600.0);
    assert_eq!(
        filler.reason_codes.as_ref().unwrap().map[0],
        (RawKey::Int(17), "mechanical/jam".into())
    );

    let form = spec.form("start-up").unwrap();
    assert_eq!(form.assets[0].as_str(), "acme/plant/line-1");
    let fields: Vec<(&str, FieldType, bool)> = form
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.field_type, f.required))
        .collect();
    assert_eq!(
        fields,
        [
            ("guards_closed", FieldType::Bool, true),
            ("fill_volume", FieldType::Float, false),
            ("result", FieldType::Choice, false),
        ]
    );

    let rule = &spec.context_rules[0];
    assert_eq!(rule.asset.as_str(), "acme/plant/line-1/filler");
    assert_eq!(rule.field, ContextField::Batch);
    assert_eq!(rule.render("7"), "B7");
}

#[test]
fn configurations_without_production_sections_load_with_nothing_configured() {
    let plan = load(BASE).unwrap();
    assert!(plan.production.is_empty());
    // A model without `production` is not tracked even when others are.
    let plan = load(&with_filler(
        "[models.Filler.production]\ncounts = { good = \"count\" }\n",
    ))
    .unwrap();
    assert_eq!(plan.production.models.len(), 1);
}

#[test]
fn rejects_unknown_key_in_a_production_table_with_suggestion() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { running = \"execute\", idle = \"idle\" }, defualt = \"stopped\" }\n",
    ));
    assert_eq!(
        d.message,
        "unknown key `defualt` in models.Filler.production.state"
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `default`?"));
    assert_at(&d, X + 1, 78, "models.Filler.production.state.defualt");
}

#[test]
fn rejects_unknown_attribute_with_suggestion() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\ncounts = { good = \"cont\" }\n",
    ));
    assert_eq!(d.message, "unknown attribute `cont` of model `Filler`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `count`?"));
    assert_at(&d, X + 1, 19, "models.Filler.production.counts.good");
}

#[test]
fn rejects_an_attribute_of_the_wrong_type() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\ncounts = { good = \"state\" }\n",
    ));
    assert_eq!(
        d.message,
        "attribute `state` is string, but a counter needs a number"
    );
    assert_at(&d, X + 1, 19, "models.Filler.production.counts.good");
}

#[test]
fn rejects_unknown_states_and_names_the_other_state_model() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { running = \"exectue\", idle = \"idle\" } }\n",
    ));
    assert_eq!(d.message, "unknown packml state `exectue`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `execute`?"));
    assert_at(&d, X + 1, 50, "models.Filler.production.state.map.running");

    let d = one_error(&with_filler(
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { running = \"running\", idle = \"idle\" } }\n",
    ));
    assert_eq!(
        d.hint.as_deref(),
        Some("`running` is a state of the reduced model; set `model = \"reduced\"` or use a packml state")
    );
}

#[test]
fn rejects_labels_left_without_a_state() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { running = \"execute\" } }\n",
    ));
    assert_eq!(d.message, "labels of attribute `state` with no state: idle");
    assert_eq!(
        d.hint.as_deref(),
        Some("map every label to a state, or set `default` for the rest")
    );
    assert_at(&d, X + 1, 38, "models.Filler.production.state.map");
}

#[test]
fn rejects_map_keys_that_are_not_labels_of_the_attribute() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { runing = \"execute\" }, default = \"idle\" }\n",
    ));
    assert_eq!(d.message, "`runing` is not a label of attribute `state`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `running`?"));
    assert_at(&d, X + 1, 40, "models.Filler.production.state.map.runing");
}

#[test]
fn rejects_three_counters_and_a_bad_ideal_rate() {
    let d = one_error(&with_filler(
        "[models.Filler.production]\ncounts = { good = \"count\", reject = \"count\", total = \"count\" }\n",
    ));
    assert_eq!(
        d.message,
        "`counts` sets `good`, `reject` and `total`: two of them determine the third"
    );
    assert_at(&d, X + 1, 54, "models.Filler.production.counts.total");

    let d = one_error(&with_filler(
        "[models.Filler.production]\ncounts = { good = \"count\" }\nideal_rate = \"600\"\n",
    ));
    assert_eq!(d.message, "invalid ideal rate `600`: `600` is not a rate");
    assert_eq!(
        d.hint.as_deref(),
        Some("write pieces per time: \"600/min\", \"10/s\" or \"36000/h\"")
    );
    assert_at(&d, X + 2, 14, "models.Filler.production.ideal_rate");
}

#[test]
fn rejects_unknown_reason_codes_with_suggestion() {
    let d = one_error(&with_filler(
        "[downtime_reasons]\nmechanical = { reasons = { jam = \"Bottle jam\" } }\n\n[models.Filler.production]\nreason_codes = { attribute = \"count\", map = { 17 = \"mechanical/jamm\" } }\n",
    ));
    assert_eq!(d.message, "unknown reason code `mechanical/jamm`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `mechanical/jam`?"));
    assert_at(&d, X + 4, 52, "models.Filler.production.reason_codes.map.17");
}

#[test]
fn rejects_reason_codes_that_are_not_codes() {
    let d = one_error(&with_base("[downtime_reasons]\nMechanical = \"Mechanical\"\n"));
    assert_eq!(d.message, "`Mechanical` is not a reason code");
    assert_at(&d, NEXT + 1, 1, "downtime_reasons.Mechanical");
}

#[test]
fn rejects_bad_times_of_day_and_offsets() {
    let d = one_error(&with_base(
        "[calendar]\nutc_offset = \"+01:00\"\nshifts = [{ name = \"A\", start = \"6:00\", end = \"14:00\" }]\n",
    ));
    assert_eq!(d.message, "invalid time of day `6:00`");
    assert_eq!(
        d.hint.as_deref(),
        Some("write local wall-clock time as \"HH:MM\", e.g. \"06:00\" or \"22:30\"")
    );
    assert_at(&d, NEXT + 2, 33, "calendar.shifts[0].start");

    let d = one_error(&with_base("[calendar]\nutc_offset = \"CET\"\n"));
    assert_eq!(d.message, "invalid UTC offset `CET`");
    assert_at(&d, NEXT + 1, 14, "calendar.utc_offset");

    let d = one_error(&with_base("[calendar]\nshifts = []\n"));
    assert_eq!(d.message, "missing required key `utc_offset`");
    assert_at(&d, NEXT, 1, "calendar.utc_offset");
}

#[test]
fn rejects_overlapping_shifts_naming_both() {
    let d = one_error(&with_base(
        "[calendar]\nutc_offset = \"Z\"\nshifts = [\n  { name = \"A\", start = \"06:00\", end = \"14:30\" },\n  { name = \"B\", start = \"14:00\", end = \"22:00\" },\n]\n",
    ));
    assert_eq!(d.message, "shift `B` overlaps shift `A` (both on mon at 14:00)");
    assert_at(&d, NEXT + 4, 3, "calendar.shifts[1]");
}

#[test]
fn rejects_unknown_form_assets_units_and_misplaced_keys() {
    let d = one_error(&with_base(
        "[forms.lab]\nassets = [\"line-2\"]\nfields.fat = { type = \"float\" }\n",
    ));
    assert_eq!(d.message, "unknown asset `line-2`");
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean `line-1`?; asset paths here are written below the site, like in [[assets]]")
    );
    assert_at(&d, NEXT + 1, 11, "forms.lab.assets[0]");

    let d = one_error(&with_base(
        "[forms.lab]\nfields.t = { type = \"float\", unit = \"degc\" }\n",
    ));
    assert_eq!(d.message, "unknown unit `degc`");
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean `degC`? (symbols are case-sensitive)")
    );
    assert_at(&d, NEXT + 1, 37, "forms.lab.fields.t.unit");

    let d = one_error(&with_base("[forms.lab]\nfields.ok = { type = \"choice\" }\n"));
    assert_eq!(d.message, "choice field `ok` needs `choices`");
    assert_at(&d, NEXT + 1, 13, "forms.lab.fields.ok.choices");

    let d = one_error(&with_base(
        "[forms.lab]\nfields.note = { type = \"string\", range = [0, 1] }\n",
    ));
    assert_eq!(
        d.message,
        "a range is only allowed on float and int fields, and `note` is string"
    );
    assert_at(&d, NEXT + 1, 42, "forms.lab.fields.note.range");

    let d = one_error(&with_base("[forms.lab]\nfields.n = { type = \"double\" }\n"));
    assert_eq!(d.message, "unknown field type `double`");
    assert_eq!(
        d.hint.as_deref(),
        Some("field types: float, int, bool, string, choice")
    );
}

#[test]
fn rejects_context_rules_with_unknown_fields_attributes_and_sources() {
    let d = one_error(&with_filler(
        "[[context_rules]]\nasset = \"line-1/filler\"\nattribute = \"count\"\nfield = \"bacth\"\n",
    ));
    assert_eq!(d.message, "unknown context field `bacth`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `batch`?"));
    assert_at(&d, X + 3, 9, "context_rules[0].field");

    let d = one_error(&with_filler(
        "[[context_rules]]\nasset = \"line-1/filler\"\nattribute = \"batch_no\"\nfield = \"batch\"\n",
    ));
    assert_eq!(d.message, "unknown attribute `batch_no` of model `Filler`");
    assert_at(&d, X + 2, 13, "context_rules[0].attribute");

    let d = one_error(&with_filler(
        "[[context_rules]]\nasset = \"line-1/filler\"\nattribute = \"count\"\nfield = \"lot\"\nmaterial = \"milk\"\nconsumes = [\"line-1\"]\n",
    ));
    assert_eq!(d.message, "no context rule opens lots on `line-1`");
    assert_at(&d, X + 5, 13, "context_rules[0].consumes[0]");

    let d = one_error(&with_filler(
        "[[context_rules]]\nasset = \"line-1/filler\"\nattribute = \"count\"\nfield = \"batch\"\nformat = \"B{count}\"\n",
    ));
    assert_eq!(d.message, "invalid format `B{count}`");
    assert_at(&d, X + 4, 10, "context_rules[0].format");

    let d = one_error(&with_filler("[context_rules]\nasset = \"line-1/filler\"\n"));
    assert_eq!(d.message, "expected an array of tables, found a table");
    assert_eq!(
        d.hint.as_deref(),
        Some("write each rule as `[[context_rules]]`, with two brackets")
    );
}

#[test]
fn rejects_a_second_rule_for_the_same_asset_and_field() {
    let rule = "[[context_rules]]\nasset = \"line-1/filler\"\nattribute = \"count\"\nfield = \"batch\"\n\n";
    let d = one_error(&with_filler(&format!("{rule}{rule}")));
    assert_eq!(d.message, "a second context rule sets `batch` on `line-1/filler`");
    assert_at(&d, X + 6, 9, "context_rules[1].asset");
}

#[test]
fn suggests_production_sections_for_misspelt_top_level_keys() {
    let d = one_error(&with_base("[calender]\nutc_offset = \"Z\"\n"));
    assert_eq!(d.message, "unknown top-level key `calender`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `calendar`?"));
}

#[test]
fn the_documented_example_loads_with_the_dairy_demo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let docs = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let section = &docs[docs.find("## Production").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    // The demo without its own production sections, which the example stands in for.
    let dairy = std::fs::read_to_string(root.join("examples/dairy.toml")).unwrap();
    let cut = dairy.find("# ── Production").unwrap();
    let resume = dairy.find("# ── Sources").unwrap();
    let dairy = format!("{}{}", &dairy[..cut], &dairy[resume..]);
    let plan = match load(&format!("{dairy}\n{example}")) {
        Ok(plan) => plan,
        Err(diagnostics) => panic!("{diagnostics:#?}"),
    };
    assert_eq!(plan.production.calendar.as_ref().unwrap().shifts.len(), 3);
    assert_eq!(plan.production.models[0].model, "Filler");
    assert_eq!(plan.production.forms[0].name, "milk-lab");
    assert_eq!(plan.production.context_rules.len(), 1);
}

#[test]
fn production_sections_merge_across_included_files_and_duplicates_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.toml");
    std::fs::write(
        &main,
        format!(
            "include = [\"more.toml\"]\n{BASE}[calendar]\nutc_offset = \"Z\"\n\n[downtime_reasons]\njam = \"Jam\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("more.toml"),
        "[calendar]\nutc_offset = \"Z\"\n\n[downtime_reasons]\nshortage = \"Shortage\"\njam = \"Jam again\"\n",
    )
    .unwrap();
    let diagnostics = backplane_config::load(&main, &common::catalog()).unwrap_err();
    let found: Vec<(String, usize, &str)> = diagnostics
        .iter()
        .map(|d| {
            (
                d.location
                    .file
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                d.location.line,
                d.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("more.toml".to_owned(), 1, "`calendar` is defined twice"),
            ("more.toml".to_owned(), 6, "reason `jam` is defined twice"),
        ]
    );
    assert!(diagnostics[1].hint.as_deref().unwrap().contains("main.toml:"));
}
