//! Shared access signature tokens: generating them (clients) and verifying them (emulator).

mod encode;
mod generate;
mod parse;
mod scope;
mod verify;

pub use encode::encode_component;
pub use generate::SasToken;
pub use parse::ParsedSas;

#[cfg(test)]
mod sdk_vectors;
