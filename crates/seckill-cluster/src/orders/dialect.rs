//! What differs between PostgreSQL and MySQL/MariaDB. Every statement is
//! written once, with `?` placeholders; the few words that differ are here.

use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    /// MySQL 8.0.1+ or MariaDB 10.6+ (`SKIP LOCKED`).
    MySql,
}

impl Dialect {
    /// The dialect a database URL speaks, by its scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split_once("://")?.0;
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    pub(super) fn migrations(self) -> &'static Migrator {
        match self {
            Self::Postgres => &POSTGRES_MIGRATIONS,
            Self::MySql => &MYSQL_MIGRATIONS,
        }
    }

    /// Statements that take and release a lock around the migrations, where
    /// sqlx's own does not hold: it is `GET_LOCK(name, -1)`, and MariaDB
    /// takes a negative timeout as "do not wait" and answers NULL at once,
    /// so two nodes starting together would both apply the schema.
    pub(super) fn migration_lock(self) -> Option<[&'static str; 2]> {
        match self {
            Self::Postgres => None,
            Self::MySql => Some([
                "SELECT GET_LOCK('seckill_migrations', 300)",
                "SELECT RELEASE_LOCK('seckill_migrations')",
            ]),
        }
    }

    /// Ends an INSERT so that a row whose primary or unique key is taken is
    /// skipped without error. MySQL's `INSERT IGNORE` would also turn CHECK
    /// and foreign-key failures into warnings and drop the row silently;
    /// `ON DUPLICATE KEY UPDATE` with a no-op skips duplicates only.
    pub(super) fn skip_duplicates(self) -> &'static str {
        match self {
            Self::Postgres => "ON CONFLICT DO NOTHING",
            Self::MySql => "ON DUPLICATE KEY UPDATE id = id",
        }
    }

    /// The 64-bit integer type of `CAST(… AS …)`: a SUM is NUMERIC or
    /// DECIMAL otherwise, which the `Any` driver does not read.
    pub(super) fn bigint(self) -> &'static str {
        match self {
            Self::Postgres => "BIGINT",
            Self::MySql => "SIGNED",
        }
    }

    /// `sql` with its `?` placeholders as the database expects them:
    /// PostgreSQL numbers them (`$1`, `$2`, …). Safe because every statement
    /// is made of this crate's text and placeholder lists, never of input
    /// (which is always bound); none has a `?` inside a literal.
    pub(super) fn sql(self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(match self {
            Self::MySql => sql.to_owned(),
            Self::Postgres => {
                let mut numbered = String::with_capacity(sql.len() + sql.len() / 4);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        numbered.push('$');
                        numbered.push_str(&n.to_string());
                    } else {
                        numbered.push(c);
                    }
                }
                numbered
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_dialect() {
        assert_eq!(
            Dialect::of_url("postgres://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::of_url("postgresql://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::of_url("mysql://u@h/db"), Some(Dialect::MySql));
        assert_eq!(Dialect::of_url("mariadb://u@h/db"), Some(Dialect::MySql));
        assert_eq!(Dialect::of_url("sqlite://x.db"), None);
        assert_eq!(Dialect::of_url("no scheme"), None);
    }

    #[test]
    fn postgres_numbers_placeholders() {
        let sql = "UPDATE t SET a = ? WHERE b = ? AND c IN (?, ?)";
        assert_eq!(Dialect::MySql.sql(sql).0, sql);
        assert_eq!(
            Dialect::Postgres.sql(sql).0,
            "UPDATE t SET a = $1 WHERE b = $2 AND c IN ($3, $4)"
        );
    }
}
