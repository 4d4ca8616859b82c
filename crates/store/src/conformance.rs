//! The conformance suite every [`Store`](crate::Store) backend must pass.
//!
//! Each case is a public `async fn(Arc<dyn Store>)` that gets a fresh, migrated, empty
//! store and panics (through `assert!`) when the backend misbehaves. The cases live in one
//! file per area ([`fixtures`] also holds what they build on); the one list of them is
//! [`conformance_cases!`](crate::conformance_cases), and a backend's test crate runs them
//! with [`store_conformance_tests!`](crate::store_conformance_tests): one `#[tokio::test]`
//! per case, named `<area>::<case>` (`cargo test tokens::` runs an area).
//!
//! The cases use only the [`Store`](crate::Store) trait, fixed whole-second instants (see
//! [`t0`]) and ids from [`latchkey_core::new_id`], so every backend runs them unchanged.
//! They need a multi-threaded Tokio runtime for the concurrency cases.

// A failed expectation here *is* the failure report: this module is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::Store;

pub mod accounts;
pub mod events;
pub mod feed;
pub mod fixtures;
pub mod housekeeping;
pub mod inventory;
pub mod limits;
pub mod policy;
pub mod recoverable;
pub mod tokens;
pub mod usage;
pub mod users;

pub use accounts::*;
pub use events::*;
pub use feed::*;
pub use fixtures::*;
pub use housekeeping::*;
pub use inventory::*;
pub use limits::*;
pub use policy::*;
pub use recoverable::*;
pub use tokens::*;
pub use usage::*;
pub use users::*;

/// The one list of conformance cases, by area (each area is a module of
/// [`conformance`](crate::conformance)). Hands the list to the macro `$callback` of this
/// crate, after `$args` and a `;`, as `area { case, ... } ...`. A new case is a public
/// `async fn(Arc<dyn Store>)` in its area's file plus its name here.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($callback:ident!($($args:tt)*)) => {
        $crate::$callback! {
            $($args)*;
            fixtures {
                fresh_store_is_empty,
                migrate_again_keeps_everything,
                bootstrap_once,
                bootstrap_concurrent,
                hash_key_recorded_and_checked,
                settings_roundtrip,
                unknown_ids_are_not_found,
            }
            users {
                users_crud,
                last_owner_protected,
                sessions_lifecycle,
                sessions_end_on_deactivation_and_password_change,
                workspaces_crud,
                memberships,
                projects_crud,
                delete_project_cascade,
            }
            tokens {
                tokens_create_get_list,
                token_pagination,
                find_secret_by_hash,
                secret_hashes_paged_and_by_token,
                revoke_and_restore,
                rotate_with_grace,
                rotate_without_grace,
                idempotency_records,
                delete_token_removes_secrets,
                last_used_merges_by_latest,
                signing_keys,
            }
            limits {
                limit_max_active_tokens,
                limit_max_tokens_per_user,
                concurrent_creates_respect_limits,
                one_legacy_token_per_user,
            }
            policy {
                token_policy_roundtrip_and_patch,
                uses_leases_and_settling,
                rate_budget_per_window,
                concurrent_leases_never_over_grant,
            }
            feed {
                audit_filters,
                change_feed,
                change_notices_follow_writes,
            }
            events {
                webhooks_crud,
                outbox_written_with_change,
                delivery_claims_and_attempts,
                deliveries_page_newest_first,
                expiry_notices_once_each,
                count_expiring_windows,
                count_tokens_by_type_and_state,
            }
            housekeeping {
                expire_tokens_sweep,
                purge_retired_rows,
                idle_sweep_revokes_once,
            }
            accounts {
                service_accounts_by_kind,
                approval_pending_then_decided,
                approval_pending_is_never_restored_active,
            }
            inventory {
                inventory_filters,
                inventory_state_filter_matches_visible_state,
                bulk_revoke_skips_with_reasons,
            }
            recoverable {
                recoverable_sealed_secret_lifecycle,
                recoverable_erased_when_type_taken_off,
            }
            usage {
                usage_flushes_add_up_and_keep_newest_ips,
                usage_flush_of_many_tokens,
            }
        }
    };
}

/// What a store factory hands a case: the store alone, or the store with a guard (a
/// temporary directory, a scratch database) that is dropped once the case is over, or
/// `None` when the backend cannot be had here (the factory prints why; the case is
/// skipped).
pub trait CaseStore: Send + 'static {
    /// The store and the guard to drop after the case; `None` skips the case.
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)>;
}

impl CaseStore for Arc<dyn Store> {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        Some((self, Box::new(())))
    }
}

impl<G: Send + 'static> CaseStore for (Arc<dyn Store>, G) {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        Some((self.0, Box::new(self.1)))
    }
}

impl<T: CaseStore> CaseStore for Option<T> {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        self.and_then(CaseStore::into_parts)
    }
}

/// Generates one `#[tokio::test]` per conformance case, each on a store from `$make`: a
/// path to an `async fn` giving a fresh, migrated, empty store as a [`CaseStore`]
/// (`Arc<dyn Store>`, or `(Arc<dyn Store>, guard)` to clean up after the case, or an
/// `Option` of either, `None` skipping the case). The tests are grouped in one module per
/// area, so `$make` must be reachable from a child module of the caller (`use super::*`).
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dependency.
///
/// ```ignore
/// async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) { /* ... */ }
/// latchkey_store::store_conformance_tests!(fresh);
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::conformance_cases!(__store_conformance_tests!($make));
    };
}

/// Implementation detail of [`store_conformance_tests!`](crate::store_conformance_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($make:path; $($area:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $area {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some((store, guard)) =
                            $crate::conformance::CaseStore::into_parts($make().await)
                        else {
                            return;
                        };
                        $crate::conformance::$area::$case(store).await;
                        drop(guard);
                    }
                )*
            }
        )*
    };
}

/// Every case's name as `area::case`, in the list's order (for tools and for the check
/// that each [`Store`] operation has a case).
pub const CASE_NAMES: &[&str] = conformance_cases!(__case_names!());

/// Implementation detail of [`CASE_NAMES`].
#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (; $($area:ident { $($case:ident),* $(,)? })*) => {
        &[$($(concat!(stringify!($area), "::", stringify!($case))),*),*]
    };
}
