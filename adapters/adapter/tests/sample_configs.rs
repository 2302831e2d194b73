//! The sample configurations in `deploy/adapter/` stay valid: they load, validate, and
//! the key, trust store and gateway certificate they name load (`--check-config`).

use mezhved_adapter::{check_config, AdapterConfig, ProviderMode};
use std::path::PathBuf;

fn sample(name: &str) -> AdapterConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/adapter")
        .join(name);
    AdapterConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_sample_consumer_and_provider_configurations_check() {
    let consumer = sample("consumer.toml");
    check_config(&consumer).expect("consumer.toml checks");
    assert_eq!(consumer.system, "USZN_IS");
    assert!(!consumer.provider.enabled);
    let provider = sample("provider.toml");
    check_config(&provider).expect("provider.toml checks");
    assert_eq!(provider.system, "ZAGS_IS");
    assert!(provider.provider.enabled);
    assert_eq!(provider.provider.mode, ProviderMode::Queue);
    assert_eq!(provider.provider.kinds.len(), 1);
    assert_ne!(consumer.api.listen, provider.api.listen);
    assert_ne!(consumer.data_dir, provider.data_dir);
}
