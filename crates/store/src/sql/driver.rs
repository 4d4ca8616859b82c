//! What the shared SQL needs from a sqlx driver, bundled into one bound: [`SqlDb`].
//!
//! Generic sqlx code normally repeats a long `where` list (an executor for `&mut
//! Connection`, `Encode` and `Decode` for every Rust type it binds or reads, ...) on every
//! function, because Rust only carries a trait's supertraits and associated-type bounds
//! along with it, not its other `where` clauses. So each of those bounds is restated here
//! as a supertrait or an associated-type bound of [`SqlDb`], through a small trait with a
//! blanket impl ([`Bind`], [`Run`], [`Column`]); generic code then says `DB: SqlDb` (or
//! `B: SqlBackend`) and nothing else. The cost is that generic code binds with
//! [`Arg::arg`] instead of `bind`, and runs queries through [`Conn`] instead of an
//! `Executor`. Binding a new Rust type means adding one line to [`SqlDb`].

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use crate::{StoreError, StoreResult};

use super::SqlBackend;

/// A boxed, sendable future (the same type as `futures::future::BoxFuture`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A query with its arguments, as `sqlx::query(sql)` makes it.
pub type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The raw connection of a backend's database.
pub type RawConn<B> = <<B as SqlBackend>::Db as Database>::Connection;

/// A row of a backend's database.
pub type RowOf<B> = <<B as SqlBackend>::Db as Database>::Row;

/// "`T` can be bound as an argument of a query living for `'q`."
pub trait Bind<'q, T>: Database {
    /// `query.bind(value)`.
    fn bind_to(query: Query<'q, Self>, value: T) -> Query<'q, Self>;
}

impl<'q, DB, T> Bind<'q, T> for DB
where
    DB: Database,
    T: 'q + Encode<'q, DB> + Type<DB>,
{
    fn bind_to(query: Query<'q, DB>, value: T) -> Query<'q, DB> {
        query.bind(value)
    }
}

/// `bind` for generic code: `sqlx::query(sql).arg(a).arg(b)`.
pub trait Arg<'q, DB: Database>: Sized {
    /// Binds the next argument.
    fn arg<T>(self, value: T) -> Self
    where
        DB: Bind<'q, T>;
}

impl<'q, DB: Database> Arg<'q, DB> for Query<'q, DB> {
    fn arg<T>(self, value: T) -> Self
    where
        DB: Bind<'q, T>,
    {
        <DB as Bind<'q, T>>::bind_to(self, value)
    }
}

/// "This connection runs queries of `DB`": the executor methods, as a trait of the
/// connection itself so it can be an associated-type bound.
pub trait Run<DB: Database>: Send {
    /// Executes, returning the driver's result (rows affected).
    fn run<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<DB::QueryResult>>;
    /// At most one row.
    fn run_optional<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<Option<DB::Row>>>;
    /// Every row.
    fn run_all<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<DB::Row>>>;
}

impl<DB, C> Run<DB> for C
where
    DB: Database,
    C: Send,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    fn run<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<DB::QueryResult>> {
        Executor::execute(self, query)
    }

    fn run_optional<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<Option<DB::Row>>> {
        Executor::fetch_optional(self, query)
    }

    fn run_all<'e, 'q: 'e>(
        &'e mut self,
        query: Query<'q, DB>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<DB::Row>>> {
        Executor::fetch_all(self, query)
    }
}

/// "A column of this row decodes as `T`."
pub trait Column<T> {
    /// `row.try_get(name)`.
    fn column(&self, name: &str) -> sqlx::Result<T>;
    /// `row.try_get(index)`.
    fn column_at(&self, index: usize) -> sqlx::Result<T>;
}

impl<R, T> Column<T> for R
where
    R: sqlx::Row,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    fn column(&self, name: &str) -> sqlx::Result<T> {
        self.try_get(name)
    }

    fn column_at(&self, index: usize) -> sqlx::Result<T> {
        self.try_get(index)
    }
}

/// A row the shared decoders read: every Rust type the schema's columns map to.
pub trait SqlRow:
    Column<i64>
    + Column<Option<i64>>
    + Column<bool>
    + Column<String>
    + Column<Option<String>>
    + Column<Vec<u8>>
    + Column<Option<Vec<u8>>>
    + Send
    + Sync
    + 'static
{
}

impl<R> SqlRow for R where
    R: Column<i64>
        + Column<Option<i64>>
        + Column<bool>
        + Column<String>
        + Column<Option<String>>
        + Column<Vec<u8>>
        + Column<Option<Vec<u8>>>
        + Send
        + Sync
        + 'static
{
}

/// Everything the shared SQL needs from a sqlx database, as one bound (see the module
/// docs). Implemented for every database that has it (SQLite and PostgreSQL do).
pub trait SqlDb:
    Database<Connection: Run<Self>, Row: SqlRow>
    + sqlx::database::HasStatementCache
    + for<'q> Bind<'q, i64>
    + for<'q> Bind<'q, Option<i64>>
    + for<'q> Bind<'q, bool>
    + for<'q> Bind<'q, String>
    + for<'q> Bind<'q, Option<String>>
    + for<'q> Bind<'q, &'q str>
    + for<'q> Bind<'q, Option<&'q str>>
    + for<'q> Bind<'q, &'q [u8]>
    + for<'q> Bind<'q, Option<&'q [u8]>>
    + for<'q> Bind<'q, &'q String>
    + for<'q> Bind<'q, &'q Option<String>>
    + for<'q> Bind<'q, &'q Vec<u8>>
{
}

impl<DB> SqlDb for DB where
    DB: Database<Connection: Run<DB>, Row: SqlRow>
        + sqlx::database::HasStatementCache
        + for<'q> Bind<'q, i64>
        + for<'q> Bind<'q, Option<i64>>
        + for<'q> Bind<'q, bool>
        + for<'q> Bind<'q, String>
        + for<'q> Bind<'q, Option<String>>
        + for<'q> Bind<'q, &'q str>
        + for<'q> Bind<'q, Option<&'q str>>
        + for<'q> Bind<'q, &'q [u8]>
        + for<'q> Bind<'q, Option<&'q [u8]>>
        + for<'q> Bind<'q, &'q String>
        + for<'q> Bind<'q, &'q Option<String>>
        + for<'q> Bind<'q, &'q Vec<u8>>
{
}

/// A connection of backend `B` as the shared SQL uses it (inside a write transaction, or
/// a read connection from the pool): runs queries and maps driver errors with
/// [`SqlBackend::error`].
pub struct Conn<'c, B: SqlBackend> {
    raw: &'c mut RawConn<B>,
    prepared: bool,
    backend: PhantomData<fn() -> B>,
}

impl<'c, B: SqlBackend> Conn<'c, B> {
    /// Wraps a raw connection (a transaction or a pooled connection dereferences to one).
    pub fn new(raw: &'c mut RawConn<B>) -> Conn<'c, B> {
        Conn::with_statements(raw, true)
    }

    /// Wraps a raw connection; with `prepared` false every statement is sent unnamed and
    /// never cached (behind a transaction-pooling PgBouncer, see
    /// [`SqlBackend::transaction_pooling`]).
    pub fn with_statements(raw: &'c mut RawConn<B>, prepared: bool) -> Conn<'c, B> {
        Conn {
            raw,
            prepared,
            backend: PhantomData,
        }
    }

    /// Whether statements are prepared (named and cached) on this connection.
    pub fn prepared(&self) -> bool {
        self.prepared
    }

    /// The raw connection, for backend-specific statements.
    pub fn raw(&mut self) -> &mut RawConn<B> {
        self.raw
    }

    async fn execute(&mut self, query: Query<'_, B::Db>) -> StoreResult<u64> {
        let query = query.persistent(self.prepared);
        let result = self.raw.run(query).await.map_err(B::error)?;
        Ok(B::rows_affected(&result))
    }

    async fn optional(&mut self, query: Query<'_, B::Db>) -> StoreResult<Option<RowOf<B>>> {
        let query = query.persistent(self.prepared);
        self.raw.run_optional(query).await.map_err(B::error)
    }

    async fn all(&mut self, query: Query<'_, B::Db>) -> StoreResult<Vec<RowOf<B>>> {
        let query = query.persistent(self.prepared);
        self.raw.run_all(query).await.map_err(B::error)
    }
}

/// Running a query on a [`Conn`], in sqlx's chained style:
/// `sqlx::query(sql).arg(id).optional(conn).await?`. Driver errors are mapped by the
/// backend ([`SqlBackend::error`]).
pub trait Fetch<'q, DB: SqlDb>: Sized {
    /// Executes; returns how many rows were affected.
    fn run<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// At most one row.
    fn optional<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<Option<DB::Row>>> + Send;

    /// Exactly one row (`Internal` when there is none: the statement always yields one).
    fn one<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<DB::Row>> + Send;

    /// Every row.
    fn all<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<Vec<DB::Row>>> + Send;

    /// The first column of the one row the statement yields (`COUNT(*)`, `RETURNING x`).
    fn scalar<T, B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<T>> + Send
    where
        DB::Row: Column<T>;

    /// The first column of the row the statement yields, if it yields one.
    fn optional_scalar<T, B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send
    where
        DB::Row: Column<T>;
}

impl<'q, DB: SqlDb> Fetch<'q, DB> for Query<'q, DB> {
    async fn run<B: SqlBackend<Db = DB>>(self, conn: &mut Conn<'_, B>) -> StoreResult<u64> {
        conn.execute(self).await
    }

    async fn optional<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> StoreResult<Option<DB::Row>> {
        conn.optional(self).await
    }

    async fn one<B: SqlBackend<Db = DB>>(self, conn: &mut Conn<'_, B>) -> StoreResult<DB::Row> {
        conn.optional(self)
            .await?
            .ok_or_else(|| StoreError::Internal("a statement returned no row".to_owned()))
    }

    async fn all<B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> StoreResult<Vec<DB::Row>> {
        conn.all(self).await
    }

    async fn scalar<T, B: SqlBackend<Db = DB>>(self, conn: &mut Conn<'_, B>) -> StoreResult<T>
    where
        DB::Row: Column<T>,
    {
        let row = self.one(conn).await?;
        row.column_at(0).map_err(B::error)
    }

    async fn optional_scalar<T, B: SqlBackend<Db = DB>>(
        self,
        conn: &mut Conn<'_, B>,
    ) -> StoreResult<Option<T>>
    where
        DB::Row: Column<T>,
    {
        match self.optional(conn).await? {
            Some(row) => row.column_at(0).map(Some).map_err(B::error),
            None => Ok(None),
        }
    }
}

/// An argument of a statement whose text is assembled at run time (filters, pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// A text argument.
    Text(String),
    /// An integer argument.
    Int(i64),
    /// A boolean argument.
    Bool(bool),
}

/// A statement assembled at run time: text with `$n` placeholders (which SQLite accepts
/// as well as PostgreSQL) and its arguments in order.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    sql: String,
    params: Vec<Param>,
}

impl Statement {
    /// Starts with `sql` (no placeholders in it).
    pub fn new(sql: &str) -> Statement {
        Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends text.
    pub fn push(&mut self, sql: &str) -> &mut Statement {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder, bound to `param`.
    pub fn param(&mut self, param: impl Into<Param>) -> &mut Statement {
        self.params.push(param.into());
        self.sql.push('$');
        self.sql.push_str(&self.params.len().to_string());
        self
    }

    /// The query, ready to run.
    pub fn query<DB: SqlDb>(&self) -> Query<'_, DB> {
        self.params
            .iter()
            .fold(sqlx::query(&self.sql), |query, param| match param {
                Param::Text(text) => query.arg(text.as_str()),
                Param::Int(int) => query.arg(*int),
                Param::Bool(flag) => query.arg(*flag),
            })
    }
}

impl From<String> for Param {
    fn from(text: String) -> Param {
        Param::Text(text)
    }
}

impl From<&str> for Param {
    fn from(text: &str) -> Param {
        Param::Text(text.to_owned())
    }
}

impl From<bool> for Param {
    fn from(flag: bool) -> Param {
        Param::Bool(flag)
    }
}

impl From<i64> for Param {
    fn from(int: i64) -> Param {
        Param::Int(int)
    }
}
