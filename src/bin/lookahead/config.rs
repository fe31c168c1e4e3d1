//! `config print` and `config validate`, and the PETS config that `pets` and `config print`
//! resolve from their arguments.

use anyhow::Context;

use lookahead::env::EnvKind;
use lookahead::pets::{PetsConfig, Preset};

use crate::args::{ConfigArgs, ConfigCommand};

impl ConfigArgs {
    /// The config of these arguments (the preset for the environment, the file over it, the
    /// `--set` keys over both) and the preset's name.
    pub fn resolve(&self) -> anyhow::Result<(PetsConfig, String)> {
        let preset: Preset = self.preset.parse()?;
        let text = read_config(self.config.as_deref())?;
        let env = env_of(self.env.as_deref(), text.as_deref(), &self.set, EnvKind::Cartpole)?;
        let cfg = PetsConfig::resolve(env, preset, text.as_deref(), &self.set)?;
        Ok((cfg, self.preset.clone()))
    }
}

/// The text of `--config`, if given (refused past 1 MiB before it is read whole).
pub fn read_config(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    path.map(|p| lookahead::util::read_config_file(p).with_context(|| format!("reading {}", p.display()))).transpose()
}

/// The environment of a run: `--env` (`cli`), else the config's `env` (the last `--set env=`,
/// else the file's), else `default`. The preset depends on the environment, so `--env` and the
/// config's `env` must agree.
pub fn env_of(cli: Option<&str>, text: Option<&str>, sets: &[String], default: EnvKind) -> anyhow::Result<EnvKind> {
    let set_env = sets.iter().rev().find_map(|s| {
        let (k, v) = s.split_once('=')?;
        (k.trim() == "env").then(|| v.trim().trim_matches('"').to_string())
    });
    let file_env = set_env.or_else(|| {
        text.and_then(|t| toml::from_str::<toml::Table>(t).ok())
            .and_then(|t| t.get("env").and_then(|v| v.as_str()).map(str::to_string))
    });
    Ok(match (cli, file_env.as_deref()) {
        (Some(cli), Some(file)) if cli != file => {
            anyhow::bail!("invalid config: env: --env says {cli:?}, the config says {file:?}")
        }
        (Some(e), _) | (None, Some(e)) => e.parse()?,
        (None, None) => default,
    })
}

/// `lookahead config print` (the resolved config as TOML) and `config validate FILE`.
pub fn cmd_config(what: ConfigCommand) -> anyhow::Result<()> {
    match what {
        ConfigCommand::Print { cfg } => {
            let (config, _) = cfg.resolve()?;
            print!("{}", config.to_toml());
        }
        ConfigCommand::Validate { file, env, preset } => {
            let text =
                lookahead::util::read_config_file(&file).with_context(|| format!("reading {}", file.display()))?;
            PetsConfig::resolve(env.parse()?, preset.parse()?, Some(&text), &[])
                .with_context(|| format!("in {}", file.display()))?;
            println!("{}: valid", file.display());
        }
    }
    Ok(())
}
