//! The fuzz targets' entry points: each takes the fuzzer's bytes, drives the product code
//! the way a request or a config file would, and asserts what must hold. The same
//! functions replay the corpora on stable (crates/server/tests/fuzz_corpora.rs).

pub mod targets {
    #[path = "token.rs"]
    mod token;
    pub use token::token;

    #[cfg(feature = "server")]
    #[path = "server.rs"]
    mod server;
    #[cfg(feature = "server")]
    pub use server::*;
}
