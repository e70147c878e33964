//! Settings. Each is one field of a group that derives clap's `Args`,
//! which gives its flag, its `SECKILL_*` variable, its help and its
//! default, and serde's `Deserialize`, whose field name is its key in the
//! TOML file (`--config`, which `token` and `bench` read too). A setting
//! comes from its flag, else its variable, else the file, else its
//! default; [`Layered::resolve`] does that for every group. The names are
//! an interface: operators' scripts and files depend on them.

use crate::rate_limit::RateLimitSettings;
use crate::serve::{ClusterSettings, DegradeSettings, ServeSettings};
use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The groups of settings: all the file may hold. `token` and `bench`
/// check the file `serve` reads as `serve` does.
const GROUPS: [Group; 5] = [
    Group::of::<StoreSettings>(),
    Group::of::<ServeSettings>(),
    Group::of::<DegradeSettings>(),
    Group::of::<RateLimitSettings>(),
    Group::of::<ClusterSettings>(),
];

struct Group {
    keys: fn() -> &'static [&'static str],
    check: fn(&ConfigFile) -> Result<()>,
}

impl Group {
    const fn of<G: DeserializeOwned>() -> Self {
        Self {
            keys: keys::<G>,
            check: |file| file.parse::<G>().map(drop),
        }
    }
}

/// The configuration file and the settings of an engine's state, shared by
/// every subcommand that needs them.
#[derive(Args)]
pub struct StoreArgs {
    /// TOML configuration file: a key per setting, its flag's name with `_`
    /// for `-` (`trusted_proxies` for --trusted-proxy), and `jwt_secret`,
    /// `admin_token`.
    #[arg(long, env = "SECKILL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub store: Layered<StoreSettings>,
}

/// Where the engine keeps its state, and the secrets otherwise generated
/// into it.
#[derive(Args, Serialize, Deserialize)]
#[serde(default = "defaults")]
pub struct StoreSettings {
    /// Embedded store folder.
    #[arg(long, env = "SECKILL_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `SECKILL_JWT_SECRET` or the file only: a flag would show it to `ps`.
    #[arg(skip)]
    pub jwt_secret: Option<String>,
    /// `SECKILL_ADMIN_TOKEN` or the file only, as the JWT secret.
    #[arg(skip)]
    pub admin_token: Option<String>,
}

/// A feature turned on or off, in flags and in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event, for log collectors.
    Json,
}

/// The text of the `--config` file; without one, empty.
#[derive(Default)]
pub struct ConfigFile {
    name: String,
    text: String,
}

impl ConfigFile {
    /// Reads the file; a key no group declares, or a value of the wrong
    /// type, is refused.
    pub fn read(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let file = Self {
            name: path.display().to_string(),
            text,
        };
        file.check()?;
        Ok(file)
    }

    /// A file of `text`, read as [`ConfigFile::read`] reads one.
    #[cfg(test)]
    pub fn from_text(text: &str) -> Result<Self> {
        let file = Self {
            name: "(test)".to_owned(),
            text: text.to_owned(),
        };
        file.check()?;
        Ok(file)
    }

    /// A key no group declares is refused where it is in the file, as
    /// serde's `deny_unknown_fields` would; so is a value of the wrong type.
    fn check(&self) -> Result<()> {
        let parsed = toml::Deserializer::parse(&self.text)
            .with_context(|| format!("parsing config {}", self.name))?;
        serde::Deserializer::deserialize_map(parsed, KnownKeys)
            .with_context(|| format!("parsing config {}", self.name))?;
        GROUPS.iter().try_for_each(|group| (group.check)(self))
    }

    /// The file as `T`: a group with the file's values over its defaults.
    /// Type errors point into the file.
    fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        toml::from_str(&self.text).with_context(|| format!("parsing config {}", self.name))
    }
}

/// A group of settings as clap parsed it (flags, variables, defaults) and
/// the settings a flag or a variable gave, which win over the file.
pub struct Layered<G> {
    parsed: G,
    given: BTreeSet<String>,
}

impl<G: Serialize + DeserializeOwned> Layered<G> {
    /// The group from all four sources: flag, variable, file, default.
    /// The settings meet as JSON, which holds every value a flag takes
    /// (TOML has no integer past `i64::MAX`).
    pub fn resolve(&self, file: &ConfigFile) -> Result<G> {
        let mut merged = serde_json::to_value(file.parse::<G>()?)?;
        let parsed = serde_json::to_value(&self.parsed)?;
        for key in &self.given {
            if let Some(value) = parsed.get(key) {
                merged[key.as_str()] = value.clone();
            }
        }
        serde_json::from_value(merged).context("combining flags, variables and the config file")
    }
}

impl<G: Args> Args for Layered<G> {
    fn group_id() -> Option<clap::Id> {
        G::group_id()
    }

    fn augment_args(command: clap::Command) -> clap::Command {
        G::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        G::augment_args_for_update(command)
    }
}

impl<G: FromArgMatches> FromArgMatches for Layered<G> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            parsed: G::from_arg_matches(matches)?,
            given: given(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.parsed.update_from_arg_matches(matches)?;
        self.given.extend(given(matches));
        Ok(())
    }
}

/// The ids of the arguments a flag or a variable gave (not a default).
fn given(matches: &ArgMatches) -> BTreeSet<String> {
    matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// A group's defaults as its clap declaration states them: neither flags
/// nor variables. The groups' serde default, for keys the file leaves out.
pub fn defaults<G: Args + FromArgMatches>() -> G {
    let command = G::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("no setting is a required flag");
    G::from_arg_matches(&matches).expect("every default parses")
}

/// Every key the file may hold.
fn known_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        GROUPS
            .iter()
            .flat_map(|group| (group.keys)())
            .copied()
            .collect()
    })
}

/// Reads a table whose keys must all be [`known_keys`].
struct KnownKeys;

impl<'de> Visitor<'de> for KnownKeys {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a table of settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(KnownKey)?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

struct KnownKey;

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KnownKey {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("the name of a setting")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<(), E> {
        if known_keys().contains(&key) {
            Ok(())
        } else {
            Err(E::unknown_field(key, known_keys()))
        }
    }
}

/// A group's TOML keys, its field names as serde knows them.
fn keys<G: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom(
                "only the field names were asked for",
            ))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("a group of settings is a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // Always an error: the fields are all that is wanted.
    let _ = G::deserialize(Fields(&mut fields));
    fields
}

/// Settings shared by `serve`, `token` and `bench`, from all four sources.
pub struct Resolved {
    pub file: ConfigFile,
    pub store: StoreSettings,
}

impl StoreArgs {
    pub fn resolve(&self) -> Result<Resolved> {
        let file = ConfigFile::read(self.config.as_deref())?;
        let store = self.store.resolve(&file)?;
        Ok(Resolved { file, store })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
    }

    fn store(flags: &[&str], file: &str) -> Result<StoreSettings> {
        let cli = Cli::try_parse_from(std::iter::once("token").chain(flags.iter().copied()))?;
        cli.store.store.resolve(&ConfigFile::from_text(file)?)
    }

    #[test]
    fn a_flag_wins_over_the_file_which_wins_over_the_default() {
        let file = "data_dir = '/from/file'\njwt_secret = 'from the file'";
        let from_flag = store(&["--data-dir", "/from/flag"], file).unwrap();
        assert_eq!(from_flag.data_dir, Path::new("/from/flag"));
        assert_eq!(from_flag.jwt_secret.as_deref(), Some("from the file"));
        assert_eq!(store(&[], file).unwrap().data_dir, Path::new("/from/file"));
        let default = store(&[], "").unwrap();
        assert_eq!(default.data_dir, Path::new("./data"));
        assert_eq!(default.jwt_secret, None);
    }

    #[test]
    fn unknown_file_keys_are_refused_by_name() {
        let error = ConfigFile::from_text("listen = 'x'\nlistne = 'x'")
            .err()
            .unwrap();
        let error = format!("{error:#}");
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("unknown field `listne`"), "{error}");
        assert!(error.contains("`listen`"), "{error}");
        // Every group's keys are known, to `token` too.
        for text in [
            "listen = 'x'",
            "user_rate = 1",
            "buffer = 1",
            "auto_degrade = 'off'",
        ] {
            ConfigFile::from_text(text).unwrap();
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_where_it_is() {
        let error = format!(
            "{:#}",
            ConfigFile::from_text("\ndata_dir = 7").err().unwrap()
        );
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("data_dir"), "{error}");
    }

    /// A setting's clap id is its TOML key (both the field's name), which
    /// is what lets the flags and variables win key by key; and no key is
    /// in two groups.
    #[test]
    fn each_flag_is_the_key_of_its_group_and_each_key_in_one_group() {
        fn ids<G: Args>() -> Vec<String> {
            G::augment_args(clap::Command::new("ids"))
                .get_arguments()
                .map(|arg| arg.get_id().to_string())
                .collect()
        }
        for (ids, keys) in [
            (ids::<StoreSettings>(), keys::<StoreSettings>()),
            (ids::<ServeSettings>(), keys::<ServeSettings>()),
            (ids::<DegradeSettings>(), keys::<DegradeSettings>()),
            (ids::<RateLimitSettings>(), keys::<RateLimitSettings>()),
            (ids::<ClusterSettings>(), keys::<ClusterSettings>()),
        ] {
            assert!(!ids.is_empty());
            for id in ids {
                assert!(keys.contains(&id.as_str()), "{id} is not a key of {keys:?}");
            }
        }
        let mut all = known_keys().to_vec();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "{all:?}");
    }

    /// The table of settings in the operators' guide: every key, its
    /// variable, its flag and its default as declared here.
    #[test]
    fn the_operators_guide_lists_every_setting_as_declared() {
        fn args<G: Args>() -> Vec<clap::Arg> {
            G::augment_args(clap::Command::new("args"))
                .get_arguments()
                .cloned()
                .collect()
        }
        fn quoted(cell: &str) -> Vec<&str> {
            cell.split('`').skip(1).step_by(2).collect()
        }
        let declared: Vec<clap::Arg> = [
            args::<StoreSettings>(),
            args::<ServeSettings>(),
            args::<DegradeSettings>(),
            args::<RateLimitSettings>(),
            args::<ClusterSettings>(),
        ]
        .concat();
        let guide = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/operations.md"
        ));
        let table = guide
            .split("## Configuration")
            .nth(1)
            .and_then(|section| section.split("\n## ").next())
            .expect("the guide's configuration section");
        let mut listed = Vec::new();
        for row in table.lines().filter(|line| line.starts_with("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let (keys, envs, flags) = (quoted(cells[0]), quoted(cells[1]), quoted(cells[2]));
            assert_eq!(keys.len(), envs.len(), "{row}");
            for (i, key) in keys.iter().enumerate() {
                listed.push(*key);
                let Some(arg) = declared.iter().find(|arg| arg.get_id() == key) else {
                    assert!(flags.is_empty(), "{key} has no flag: {row}");
                    continue;
                };
                let env = arg.get_env().and_then(|env| env.to_str());
                assert_eq!(env, Some(envs[i]), "{row}");
                assert_eq!(
                    Some(flags[i]),
                    arg.get_long().map(|long| format!("--{long}")).as_deref(),
                    "{row}"
                );
                if let [default] = arg.get_default_values() {
                    let default = default.to_str().expect("UTF-8");
                    assert!(cells[3].starts_with(&format!("`{default}`")), "{row}");
                }
            }
        }
        let mut keys = known_keys().to_vec();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, keys);
    }
}
