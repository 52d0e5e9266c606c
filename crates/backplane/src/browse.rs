//! `backplane browse URL [options]`: the URL's scheme picks a kind's discovery hook
//! ([`Browser`]), whose [`OptionSpec`]s become this command's options, so
//! `backplane browse URL --help` shows the protocol's own options.

use std::process::ExitCode;

use backplane_connector::{Browser, OptionSpec, Options, Registry};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::serve;

/// Parses `args` (what followed the URL) with the options of the browser for `url`'s
/// scheme, runs it and prints its report.
pub fn run(registry: &Registry, url: String, args: Vec<String>) -> ExitCode {
    let Some(browser) = backplane::kinds::browser_for(registry, &url) else {
        eprintln!("error: {}", unknown_scheme(registry, &url));
        return ExitCode::FAILURE;
    };
    let argv = ["backplane browse".to_owned(), url].into_iter().chain(args);
    // Exits on --help and on usage errors, as any clap command does.
    let matches = command(&browser).get_matches_from(argv);
    let url = matches.get_one::<String>("url").cloned().unwrap_or_default();
    let options = options(browser.options, &matches);
    serve::run_blocking(None, || async move {
        println!("{}", (browser.run)(url, options).await?.text);
        Ok(())
    })
}

/// The URL schemes, with what browsing each does, for `backplane browse --help`.
pub fn schemes(registry: &Registry) -> String {
    let mut text = "URL schemes:".to_owned();
    for browser in backplane::kinds::browsers(registry) {
        let schemes: Vec<String> = browser.schemes.iter().map(|s| format!("{s}://")).collect();
        text.push_str(&format!("\n  {}: {}", schemes.join(", "), browser.about));
    }
    text
}

fn unknown_scheme(registry: &Registry, url: &str) -> String {
    let schemes: Vec<String> = backplane::kinds::browsers(registry)
        .iter()
        .flat_map(|b| b.schemes.iter().map(|s| format!("{s}://")))
        .collect();
    let what = match url.split_once("://") {
        Some((scheme, _)) => format!("no kind of this build browses `{scheme}://` URLs"),
        None => format!("`{url}` has no scheme (`scheme://...`)"),
    };
    format!("{what}; the URL must start with one of: {}", schemes.join(", "))
}

/// The command line of one browser: the URL, then its options.
fn command(browser: &Browser) -> Command {
    let schemes: Vec<String> = browser.schemes.iter().map(|s| format!("{s}://")).collect();
    let mut command = Command::new("backplane browse").about(browser.about).arg(
        Arg::new("url")
            .value_name("URL")
            .required(true)
            .help(format!("The device: {}", schemes.join(", "))),
    );
    for spec in browser.options {
        command = command.arg(arg(spec));
    }
    command
}

fn arg(spec: &OptionSpec) -> Arg {
    let help = match spec.default {
        // The hook applies its default itself; clap only shows it.
        Some(default) => format!("{} [default: {default}]", spec.help),
        None => spec.help.to_owned(),
    };
    let arg = Arg::new(spec.name).long(spec.name).help(help);
    match (spec.value, spec.repeated) {
        (Some(placeholder), true) => arg.value_name(placeholder).action(ArgAction::Append),
        (Some(placeholder), false) => arg.value_name(placeholder).action(ArgAction::Set),
        (None, _) => arg.action(ArgAction::SetTrue),
    }
}

/// The options given, by name, for the browser's run function.
fn options(specs: &[OptionSpec], matches: &ArgMatches) -> Options {
    let mut options = Options::default();
    for spec in specs {
        if spec.value.is_some() {
            for value in matches.get_many::<String>(spec.name).into_iter().flatten() {
                options.push(spec.name, value.clone());
            }
        } else if matches.get_flag(spec.name) {
            options.push(spec.name, "true");
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::value("unit", "ID", "Unit id").default("1"),
        OptionSpec::value("emit-toml", "ADDRESSES", "Addresses").repeated(),
        OptionSpec::switch("verbose", "More"),
    ];

    fn browser() -> Browser {
        Browser {
            schemes: &["test"],
            local_schemes: &[],
            about: "Test browser",
            options: SPECS,
            run: |_, _| async { Ok(backplane_connector::BrowseReport::default()) }.boxed(),
        }
    }

    #[test]
    fn option_specs_become_options_by_name() {
        let matches = command(&browser())
            .try_get_matches_from([
                "backplane browse",
                "test://x",
                "--unit",
                "7",
                "--emit-toml",
                "a,b",
                "--emit-toml",
                "c",
                "--verbose",
            ])
            .unwrap();
        let given = options(SPECS, &matches);
        assert_eq!(given.get("unit"), Some("7"));
        assert_eq!(given.all("emit-toml"), ["a,b", "c"]);
        assert!(given.flag("verbose"));
        let matches = command(&browser())
            .try_get_matches_from(["backplane browse", "test://x"])
            .unwrap();
        let options = options(SPECS, &matches);
        assert_eq!(options, Options::default(), "defaults are the hook's to apply");
    }

    #[test]
    fn help_shows_each_option_and_its_default() {
        let help = command(&browser()).render_help().to_string();
        assert!(
            help.contains("--unit <ID>") && help.contains("[default: 1]"),
            "{help}"
        );
        assert!(
            help.contains("--emit-toml <ADDRESSES>") && help.contains("--verbose"),
            "{help}"
        );
        assert!(
            command(&browser())
                .try_get_matches_from(["b", "test://x", "--nope"])
                .is_err()
        );
    }
}
