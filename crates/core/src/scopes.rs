//! A set of scopes as a bit mask, so the hot path intersects rights with one `&`.

use latchkey_proto::Scope;

/// A set of [`Scope`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scopes.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    fn bit(scope: Scope) -> u8 {
        1 << (scope as u8)
    }

    /// Every scope.
    pub fn all() -> ScopeSet {
        ScopeSet::from_iter(Scope::ALL)
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// Whether every scope of `other` is in the set.
    pub fn is_superset(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Scopes in both.
    pub fn intersect(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    /// Adds a scope.
    pub fn with(self, scope: Scope) -> ScopeSet {
        ScopeSet(self.0 | Self::bit(scope))
    }

    /// The raw bit mask (one bit per [`Scope`], by its position in [`Scope::ALL`]), e.g.
    /// to index a table of precomputed answers.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in wire order.
    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// Space-separated wire names (OAuth `scope` style).
    pub fn to_space_separated(self) -> String {
        self.to_vec()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(ScopeSet::EMPTY, ScopeSet::with)
    }
}
