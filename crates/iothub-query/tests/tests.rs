//! Integration tests for iothub-query, one binary.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The fixture fleet of device and module twins, and helpers to run queries over it.
mod fleet;

/// Every example query of Microsoft's query-language documentation, with the rows it must
/// return (<https://learn.microsoft.com/azure/iot-hub/query-twins>,
/// <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language>).
mod examples;

/// Three-valued type semantics: one table of conditions over one twin.
mod semantics;

/// Malformed queries, each with its own positioned error.
mod errors;

/// Projections, aggregates and GROUP BY beyond the documented examples.
mod select;

/// Paging over a stable order, and TOP across pages.
mod paging;

/// Compound expression nodes shared by the two property-test modules below.
mod expr_strategy;

/// Property tests: the parser never panics, and printing round-trips.
mod roundtrip;

/// The row filter's fast paths agree with the general evaluator.
mod differential;

/// Matching a row allocates nothing (a counting global allocator).
mod alloc;
