//! DDL statements and the model each must produce.

use schema::{Catalog, Class, ColumnType, Generated, LobSize, Table};

fn types_fixture() -> &'static str {
    include_str!("data/show-create-types.sql")
}

/// A catalog with schema `app` (utf8mb4) and whatever `setup` creates in it.
fn catalog(setup: &[&str]) -> Catalog {
    let mut c = Catalog::new();
    c.apply("", "CREATE DATABASE app CHARACTER SET utf8mb4")
        .unwrap();
    for sql in setup {
        c.apply("app", sql).unwrap_or_else(|e| panic!("{e}"));
    }
    c
}

fn table<'c>(c: &'c Catalog, name: &str) -> &'c Table {
    c.table("app", name)
        .unwrap_or_else(|| panic!("app.{name} is not tracked: {:?}", c.tables.keys()))
}

fn names(t: &Table) -> Vec<&str> {
    t.columns.iter().map(|c| c.name.as_str()).collect()
}

fn ty(t: &Table, column: &str) -> ColumnType {
    t.column(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .1
        .ty
        .clone()
}

#[test]
fn mariadb_show_create_table_with_every_type() {
    let c = catalog(&[types_fixture()]);
    let t = table(&c, "types");
    assert_eq!(t.columns.len(), 33);
    let int = |bytes, unsigned| ColumnType::Int { bytes, unsigned };
    let expected = [
        ("id", int(4, false)),
        ("ti", int(1, false)),
        ("tiu", int(1, true)),
        ("si", int(2, true)),
        ("mi", int(3, false)),
        ("bi", int(8, true)),
        (
            "d",
            ColumnType::Decimal {
                precision: 65,
                scale: 30,
                unsigned: false,
            },
        ),
        ("f", ColumnType::Float { unsigned: false }),
        ("db", ColumnType::Double { unsigned: false }),
        ("dt", ColumnType::Date),
        ("dtm6", ColumnType::DateTime { fsp: 6 }),
        ("ts", ColumnType::Timestamp { fsp: 0 }),
        ("ts6", ColumnType::Timestamp { fsp: 6 }),
        ("t2", ColumnType::Time { fsp: 2 }),
        ("y", ColumnType::Year),
        ("c", ColumnType::Char { chars: 10 }),
        ("vc", ColumnType::VarChar { chars: 300 }),
        (
            "tx",
            ColumnType::Text {
                size: LobSize::Regular,
            },
        ),
        ("l1", ColumnType::VarChar { chars: 10 }),
        ("bn", ColumnType::Binary { bytes: 4 }),
        ("vb", ColumnType::VarBinary { bytes: 10 }),
        (
            "bl",
            ColumnType::Blob {
                size: LobSize::Regular,
            },
        ),
        (
            "mb",
            ColumnType::Blob {
                size: LobSize::Medium,
            },
        ),
        (
            "e",
            ColumnType::Enum {
                members: vec!["a".into(), "b'q".into(), "c".into()],
            },
        ),
        (
            "s",
            ColumnType::Set {
                members: vec!["x".into(), "y".into(), "z".into()],
            },
        ),
        ("b1", ColumnType::Bit { bits: 1 }),
        ("b64", ColumnType::Bit { bits: 64 }),
        (
            "j",
            ColumnType::Text {
                size: LobSize::Long,
            },
        ),
        ("u", ColumnType::Uuid),
        ("i6", ColumnType::Inet6),
        (
            "g",
            ColumnType::Geometry {
                kind: "point".into(),
            },
        ),
        ("gen", int(4, false)),
        ("gen2", int(4, false)),
    ];
    for (i, (name, ty)) in expected.iter().enumerate() {
        assert_eq!(t.columns[i].name, *name);
        assert_eq!(t.columns[i].ty, *ty, "column {name}");
    }
    let col = |n: &str| t.column(n).unwrap().1;
    assert!(!col("id").nullable && !col("bi").nullable && !col("ts6").nullable);
    assert!(col("ti").nullable && col("ts").nullable);
    assert_eq!(col("bi").default.as_deref(), Some("7"));
    assert_eq!(col("gen").generated, Some(Generated::Virtual));
    assert_eq!(col("gen2").generated, Some(Generated::Stored));
    assert_eq!(col("id").generated, None);
    // Charsets: the table's default, or the column's own.
    assert_eq!(
        (t.charset.as_deref(), t.collation.as_deref()),
        (Some("utf8mb4"), Some("utf8mb4_general_ci"))
    );
    assert_eq!(col("c").charset.as_deref(), Some("utf8mb4"));
    assert_eq!(
        (col("l1").charset.as_deref(), col("l1").collation.as_deref()),
        (Some("latin1"), Some("latin1_swedish_ci"))
    );
    assert_eq!(col("j").collation.as_deref(), Some("utf8mb4_bin"));
    assert_eq!(col("bn").charset, None, "binary columns have no charset");
    // Keys.
    assert_eq!(t.primary_key.as_ref().unwrap().columns, ["id"]);
    assert_eq!(t.unique_keys.len(), 1);
    assert_eq!(
        (
            t.unique_keys[0].name.as_str(),
            t.unique_keys[0].columns.clone()
        ),
        ("uk", vec!["c".to_string(), "vc".into()])
    );
    let idx: Vec<&str> = t.indexes.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(idx, ["k1", "pref"]);
}

#[test]
fn partitions_and_zerofill_from_show_create_table() {
    let c = catalog(&[include_str!("data/show-create-parts.sql")]);
    let t = table(&c, "parts");
    assert_eq!(names(t), ["id", "v"]);
    assert_eq!(
        ty(t, "v"),
        ColumnType::Int {
            bytes: 4,
            unsigned: true
        }
    );
    // ZEROFILL alone implies UNSIGNED.
    let c = catalog(&["CREATE TABLE z (a SMALLINT ZEROFILL, b INT(5) UNSIGNED ZEROFILL NOT NULL) PARTITION BY KEY (b) PARTITIONS 4"]);
    let t = table(&c, "z");
    assert_eq!(
        ty(t, "a"),
        ColumnType::Int {
            bytes: 2,
            unsigned: true
        }
    );
    assert_eq!(
        ty(t, "b"),
        ColumnType::Int {
            bytes: 4,
            unsigned: true
        }
    );
    assert!(!t.column("b").unwrap().1.nullable);
}

#[test]
fn create_table_forms() {
    let mut c = catalog(&[
        "/* leading comment */ CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(100) UNIQUE, n INT NOT NULL, KEY (n)) ENGINE=InnoDB",
    ]);
    let t = table(&c, "t").clone();
    assert_eq!(t.primary_key.as_ref().unwrap().columns, ["id"]);
    assert_eq!(t.unique_keys[0].columns, ["email"]);
    assert_eq!(
        t.indexes[0].name, "n",
        "an unnamed key is named after its first column"
    );
    // IF NOT EXISTS on an existing table changes nothing.
    let applied = c
        .apply("app", "CREATE TABLE IF NOT EXISTS t (other INT)")
        .unwrap();
    assert!(applied.tables.is_empty());
    assert_eq!(table(&c, "t"), &t);
    // Without it, the tracker refuses (the server would have refused too).
    assert!(c.apply("app", "CREATE TABLE t (x INT)").is_err());
    // OR REPLACE replaces.
    c.apply("app", "CREATE OR REPLACE TABLE t (x INT)").unwrap();
    assert_eq!(names(table(&c, "t")), ["x"]);
    // LIKE, both spellings, qualified names and USE context.
    c.apply("app", "CREATE TABLE copy1 LIKE t").unwrap();
    c.apply("", "CREATE TABLE app.copy2 (LIKE app.t)").unwrap();
    assert_eq!(names(table(&c, "copy1")), ["x"]);
    assert_eq!(table(&c, "copy2").name, "copy2");
    // A table in another database, created through a qualified name.
    c.apply("", "CREATE DATABASE other").unwrap();
    c.apply("app", "CREATE TABLE other.o (a INT)").unwrap();
    assert!(c.table("other", "o").is_some());
    // Generated columns in MariaDB's spellings.
    c.apply("app", "CREATE TABLE g (a INT, b INT AS (a + 1) PERSISTENT, c INT GENERATED ALWAYS AS (a * 2) VIRTUAL, d INT INVISIBLE)")
        .unwrap();
    let g = table(&c, "g");
    assert_eq!(g.column("b").unwrap().1.generated, Some(Generated::Stored));
    assert_eq!(g.column("c").unwrap().1.generated, Some(Generated::Virtual));
    assert!(g.column("d").unwrap().1.invisible);
}

#[test]
fn alter_table_column_changes() {
    let mut c = catalog(&["CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c INT)"]);
    c.apply("app", "ALTER TABLE t ADD COLUMN x INT AFTER id")
        .unwrap();
    assert_eq!(names(table(&c, "t")), ["id", "x", "a", "b", "c"]);
    c.apply(
        "app",
        "ALTER TABLE t ADD y INT FIRST, DROP COLUMN c, MODIFY a BIGINT UNSIGNED NOT NULL",
    )
    .unwrap();
    let t = table(&c, "t");
    assert_eq!(names(t), ["y", "id", "x", "a", "b"]);
    assert_eq!(
        ty(t, "a"),
        ColumnType::Int {
            bytes: 8,
            unsigned: true
        }
    );
    assert!(!t.column("a").unwrap().1.nullable);
    c.apply(
        "app",
        "ALTER TABLE t CHANGE COLUMN b bee VARCHAR(20) CHARACTER SET latin1 AFTER y",
    )
    .unwrap();
    let t = table(&c, "t");
    assert_eq!(names(t), ["y", "bee", "id", "x", "a"]);
    assert_eq!(
        t.column("bee").unwrap().1.charset.as_deref(),
        Some("latin1")
    );
    c.apply(
        "app",
        "ALTER TABLE t RENAME COLUMN x TO ex, MODIFY y INT FIRST",
    )
    .unwrap();
    assert_eq!(names(table(&c, "t")), ["y", "bee", "id", "ex", "a"]);
    c.apply("app", "ALTER TABLE t ADD COLUMN (p INT, q INT), DROP y")
        .unwrap();
    assert_eq!(names(table(&c, "t")), ["bee", "id", "ex", "a", "p", "q"]);
    // MariaDB's IF [NOT] EXISTS inside specs.
    c.apply(
        "app",
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS p INT, DROP COLUMN IF EXISTS nope",
    )
    .unwrap();
    assert_eq!(names(table(&c, "t")).len(), 6);
    // ALTER ONLINE TABLE, and ALTER COLUMN defaults.
    c.apply("app", "ALTER ONLINE TABLE t ALTER COLUMN p SET DEFAULT 42")
        .unwrap();
    assert_eq!(
        table(&c, "t").column("p").unwrap().1.default.as_deref(),
        Some("42")
    );
    c.apply("app", "ALTER TABLE t ALTER p DROP DEFAULT")
        .unwrap();
    assert_eq!(table(&c, "t").column("p").unwrap().1.default, None);
    // Column names are case-insensitive.
    c.apply("app", "ALTER TABLE t DROP COLUMN Q").unwrap();
    assert!(table(&c, "t").column("q").is_none());
}

#[test]
fn alter_table_keys() {
    let mut c = catalog(&["CREATE TABLE t (id INT, a INT, b INT, c INT)"]);
    c.apply("app", "ALTER TABLE t ADD PRIMARY KEY (id), ADD UNIQUE KEY uab (a, b), ADD INDEX ic (c), ADD KEY (b)").unwrap();
    let t = table(&c, "t");
    assert_eq!(t.primary_key.as_ref().unwrap().columns, ["id"]);
    assert!(
        !t.column("id").unwrap().1.nullable,
        "primary key columns are NOT NULL"
    );
    assert_eq!(t.unique_keys[0].name, "uab");
    assert_eq!(
        t.indexes
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["ic", "b"]
    );
    c.apply(
        "app",
        "ALTER TABLE t RENAME INDEX ic TO ic2, DROP KEY b, ADD INDEX IF NOT EXISTS ic2 (c)",
    )
    .unwrap();
    assert_eq!(
        table(&c, "t")
            .indexes
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["ic2"]
    );
    c.apply(
        "app",
        "ALTER TABLE t DROP INDEX IF EXISTS nope, DROP PRIMARY KEY",
    )
    .unwrap();
    assert!(table(&c, "t").primary_key.is_none());
    // Dropping a key column shrinks the key; its last column drops the key.
    c.apply("app", "ALTER TABLE t DROP COLUMN a").unwrap();
    assert_eq!(table(&c, "t").unique_keys[0].columns, ["b"]);
    c.apply("app", "ALTER TABLE t DROP COLUMN b").unwrap();
    assert!(table(&c, "t").unique_keys.is_empty());
    // CREATE/DROP INDEX statements.
    c.apply("app", "CREATE UNIQUE INDEX uc ON t (c)").unwrap();
    assert_eq!(table(&c, "t").unique_keys[0].name, "uc");
    c.apply("app", "DROP INDEX uc ON app.t").unwrap();
    assert!(table(&c, "t").unique_keys.is_empty());
    // Constraints that are no keys change nothing.
    c.apply("app", "ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0), ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES t (id)").unwrap();
}

#[test]
fn option_only_alters_change_no_column() {
    let mut c = catalog(&["CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(10), n INT) PARTITION BY HASH (id) PARTITIONS 2"]);
    let before = table(&c, "t").clone();
    for sql in [
        "ALTER TABLE t ENGINE=InnoDB",
        "ALTER TABLE t ENGINE = InnoDB, ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE t COMMENT = 'hello'",
        "ALTER TABLE t AUTO_INCREMENT = 1000",
        "ALTER TABLE t ROW_FORMAT=DYNAMIC",
        "ALTER TABLE t FORCE",
        "ALTER TABLE t COALESCE PARTITION 1",
        "ALTER TABLE t REMOVE PARTITIONING",
        "ALTER TABLE t PARTITION BY KEY (id) PARTITIONS 3",
        "OPTIMIZE TABLE t",
        "ANALYZE TABLE t",
    ] {
        c.apply("app", sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(table(&c, "t").columns, before.columns, "{sql}");
    }
    // Charset options change defaults; CONVERT TO changes every text column.
    c.apply("app", "ALTER TABLE t DEFAULT CHARSET=latin1")
        .unwrap();
    let t = table(&c, "t");
    assert_eq!(t.charset.as_deref(), Some("latin1"));
    assert_eq!(
        t.column("s").unwrap().1.charset.as_deref(),
        Some("utf8mb4"),
        "existing columns keep theirs"
    );
    c.apply(
        "app",
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb3 COLLATE utf8mb3_bin",
    )
    .unwrap();
    let s = table(&c, "t").column("s").unwrap().1.clone();
    assert_eq!(
        (s.charset.as_deref(), s.collation.as_deref()),
        (Some("utf8mb3"), Some("utf8mb3_bin"))
    );
    assert_eq!(table(&c, "t").column("n").unwrap().1.charset, None);
}

#[test]
fn drop_rename_truncate_and_databases() {
    let mut c = catalog(&[
        "CREATE TABLE a (x INT)",
        "CREATE TABLE b (y INT)",
        "CREATE TABLE c (z INT)",
    ]);
    // Swap a and b through a temporary name, in one statement.
    let applied = c
        .apply("app", "RENAME TABLE a TO tmp, b TO a, tmp TO b")
        .unwrap();
    assert_eq!(applied.class, Class::Table);
    assert_eq!(names(table(&c, "a")), ["y"]);
    assert_eq!(names(table(&c, "b")), ["x"]);
    c.apply("app", "ALTER TABLE c RENAME TO c2").unwrap();
    assert!(c.table("app", "c").is_none());
    assert_eq!(table(&c, "c2").name, "c2");
    c.apply("app", "ALTER TABLE c2 ADD w INT, RENAME AS app.c3")
        .unwrap();
    assert_eq!(names(table(&c, "c3")), ["z", "w"]);
    let applied = c.apply("app", "TRUNCATE TABLE a").unwrap();
    assert_eq!((applied.class, applied.tables.len()), (Class::Truncate, 0));
    // MariaDB writes DROP TABLE with a comment after the names.
    c.apply("app", "DROP TABLE `a`,`b` /* generated by server */")
        .unwrap();
    assert!(c.table("app", "a").is_none() && c.table("app", "b").is_none());
    c.apply("app", "DROP TABLE IF EXISTS never_was").unwrap();
    // A dropped table recreated with other columns.
    c.apply("app", "CREATE TABLE a (new1 DATE, new2 BLOB)")
        .unwrap();
    assert_eq!(names(table(&c, "a")), ["new1", "new2"]);
    // Databases and their default charset, inherited by new tables.
    c.apply(
        "",
        "CREATE DATABASE IF NOT EXISTS l1 DEFAULT CHARACTER SET latin1",
    )
    .unwrap();
    c.apply("l1", "CREATE TABLE t (s TEXT)").unwrap();
    assert_eq!(
        c.table("l1", "t")
            .unwrap()
            .column("s")
            .unwrap()
            .1
            .charset
            .as_deref(),
        Some("latin1")
    );
    c.apply("l1", "ALTER DATABASE CHARACTER SET utf8mb4")
        .unwrap();
    assert_eq!(c.databases["l1"].charset.as_deref(), Some("utf8mb4"));
    // An option the model does not hold still names the database it concerns.
    let applied = c.apply("l1", "ALTER DATABASE COMMENT 'x'").unwrap();
    assert_eq!(applied.databases.len(), 1);
    assert_eq!(applied.databases[0].0, "l1");
    assert_eq!(c.databases["l1"].charset.as_deref(), Some("utf8mb4"));
    let applied = c.apply("", "DROP DATABASE l1").unwrap();
    assert!(c.table("l1", "t").is_none());
    assert_eq!(applied.tables.len(), 1);
}

#[test]
fn statements_that_change_no_table_are_classified() {
    let mut c = catalog(&["CREATE TABLE t (id INT)"]);
    let before = c.clone();
    for (sql, class) in [
        ("GRANT SELECT ON app.* TO 'u'@'%'", Class::Account),
        ("CREATE USER 'u'@'%' IDENTIFIED BY 'x'", Class::Account),
        ("ALTER USER 'u'@'%' IDENTIFIED BY 'y'", Class::Account),
        ("DROP USER 'u'@'%'", Class::Account),
        ("CREATE ROLE r", Class::Account),
        ("SET PASSWORD FOR 'u'@'%' = PASSWORD('z')", Class::Account),
        ("CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.id = 1", Class::Object),
        ("CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`root`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1", Class::Object),
        ("CREATE PROCEDURE p() BEGIN SELECT 1; END", Class::Object),
        ("DROP VIEW IF EXISTS v", Class::Object),
        ("OPTIMIZE TABLE t", Class::Maintenance),
        ("FLUSH PRIVILEGES", Class::Maintenance),
        ("INSTALL SONAME 'ha_blackhole'", Class::Other),
        ("CREATE TEMPORARY TABLE tmp (a INT)", Class::Other),
    ] {
        let applied = c.apply("app", sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(applied.class, class, "{sql}");
        assert!(applied.tables.is_empty(), "{sql}");
    }
    assert_eq!(c, before);
}

#[test]
fn statements_it_cannot_apply_are_errors_naming_them() {
    let mut c = catalog(&["CREATE TABLE t (id INT)"]);
    for (sql, why) in [
        (
            "ALTER TABLE missing ADD x INT",
            "app.missing is not tracked",
        ),
        ("ALTER TABLE t DROP COLUMN nope", "no column `nope`"),
        ("ALTER TABLE t ADD x INT AFTER nope", "AFTER `nope`"),
        ("ALTER TABLE t ADD x NOTATYPE", "column"),
        ("CREATE TABLE s AS SELECT 1", "without a column list"),
        ("FROBNICATE TABLE t", "does not know"),
        ("ALTER TABLE t ADD INDEX i (nope)", "key column `nope`"),
    ] {
        let e = c.apply("app", sql).unwrap_err();
        assert!(e.to_string().contains(why), "{sql}: {e}");
        assert!(
            e.to_string()
                .contains(sql.split_whitespace().next().unwrap()),
            "the statement is named: {e}"
        );
    }
    // A failed statement leaves the table as it was.
    assert_eq!(names(table(&c, "t")), ["id"]);
    c.apply("app", "ALTER TABLE t ADD a INT, DROP nope")
        .unwrap_err();
    assert_eq!(names(table(&c, "t")), ["id"], "all or nothing");
}

#[test]
fn a_rendered_definition_parses_back_to_the_same_model() {
    let mut c = catalog(&[types_fixture(), include_str!("data/show-create-parts.sql")]);
    for name in ["types", "parts"] {
        let t = table(&c, name).clone();
        let sql = t.create_statement();
        // Generated columns render without their expression: make one up to re-parse.
        let sql = sql.replace("/* generated */", "AS (1)");
        c.apply("app", &format!("DROP TABLE {name}")).unwrap();
        c.apply("app", &sql)
            .unwrap_or_else(|e| panic!("{sql}\n{e}"));
        assert_eq!(table(&c, name), &t, "{sql}");
    }
}

fn keys(t: &Table) -> Vec<String> {
    t.primary_key
        .iter()
        .chain(&t.unique_keys)
        .chain(&t.indexes)
        .map(|k| format!("{}({})", k.name, k.columns.join(",")))
        .collect()
}

#[test]
fn alter_specs_name_columns_as_they_were_before_the_statement() {
    let mut c =
        catalog(&["CREATE TABLE s (id INT PRIMARY KEY, lat DOUBLE, lng FLOAT, KEY (lat), b INT)"]);
    // A swap: each CHANGE names a column as it was.
    c.apply(
        "app",
        "ALTER TABLE s CHANGE lat lng FLOAT, CHANGE lng lat DOUBLE",
    )
    .unwrap();
    let t = table(&c, "s");
    assert_eq!(names(t), ["id", "lng", "lat", "b"]);
    assert_eq!(ty(t, "lng"), ColumnType::Float { unsigned: false });
    assert_eq!(ty(t, "lat"), ColumnType::Double { unsigned: false });
    assert_eq!(
        keys(t),
        ["PRIMARY(id)", "lat(lng)"],
        "the key follows its column"
    );
    c.apply(
        "app",
        "ALTER TABLE s RENAME COLUMN lat TO lng, RENAME COLUMN lng TO lat",
    )
    .unwrap();
    assert_eq!(names(table(&c, "s")), ["id", "lat", "lng", "b"]);
    // Keys and positions by the new names, whatever the spec order.
    c.apply(
        "app",
        "ALTER TABLE s ADD INDEX (c), ADD c INT, ADD z INT AFTER b2, CHANGE b b2 INT",
    )
    .unwrap();
    let t = table(&c, "s");
    assert_eq!(names(t), ["id", "lat", "lng", "b2", "z", "c"]);
    assert!(keys(t).contains(&"c(c)".to_string()));
    // A column dropped and added again under its name keeps its keys.
    c.apply(
        "app",
        "ALTER TABLE s DROP COLUMN c, ADD COLUMN c VARCHAR(9)",
    )
    .unwrap();
    assert!(keys(table(&c, "s")).contains(&"c(c)".to_string()));
    // MODIFY of a primary key column leaves it NOT NULL.
    c.apply("app", "ALTER TABLE s MODIFY id BIGINT AUTO_INCREMENT")
        .unwrap();
    assert!(!table(&c, "s").column("id").unwrap().1.nullable);
    // Two columns under one name are refused.
    let e = c
        .apply("app", "ALTER TABLE s CHANGE lat lng DOUBLE")
        .unwrap_err();
    assert!(e.to_string().contains("two columns named `lng`"), "{e}");
}

#[test]
fn constraints_options_and_statement_wrappers() {
    let mut c = catalog(&["CREATE TABLE u (id INT PRIMARY KEY, email VARCHAR(50), pid INT, CONSTRAINT uq UNIQUE (email))"]);
    assert_eq!(
        keys(table(&c, "u")),
        ["PRIMARY(id)", "uq(email)"],
        "the constraint names the key"
    );
    c.apply("app", "ALTER TABLE u DROP CONSTRAINT uq").unwrap();
    assert_eq!(keys(table(&c, "u")), ["PRIMARY(id)"]);
    // A foreign key makes an index named after it, which outlives the constraint.
    c.apply(
        "app",
        "ALTER TABLE u ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE",
    )
    .unwrap();
    assert_eq!(keys(table(&c, "u")), ["PRIMARY(id)", "fk(pid)"]);
    c.apply("app", "ALTER TABLE u DROP FOREIGN KEY fk, DROP INDEX fk")
        .unwrap();
    assert_eq!(keys(table(&c, "u")), ["PRIMARY(id)"]);
    // Space-separated options: the charset is not lost behind ENGINE=.
    c.apply("app", "ALTER TABLE u ENGINE=InnoDB DEFAULT CHARSET=latin1")
        .unwrap();
    c.apply("app", "ALTER TABLE u ADD note TEXT").unwrap();
    assert_eq!(
        table(&c, "u").column("note").unwrap().1.charset.as_deref(),
        Some("latin1")
    );
    // SET STATEMENT … FOR wraps the DDL that counts.
    c.apply(
        "app",
        "SET STATEMENT max_statement_time=0, lock_wait_timeout=5 FOR ALTER TABLE u ADD x INT",
    )
    .unwrap();
    assert!(table(&c, "u").column("x").is_some());
    // Partition operations, with their own comma lists, change no column.
    let before = table(&c, "u").columns.clone();
    for sql in [
        "ALTER TABLE u DROP PARTITION p1, p2",
        "ALTER TABLE u REORGANIZE PARTITION p0, p1 INTO (PARTITION p2 VALUES LESS THAN (10))",
        "ALTER TABLE u TRUNCATE PARTITION p0, p1",
        "ALTER TABLE u ALTER INDEX uq IGNORED",
    ] {
        c.apply("app", sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(table(&c, "u").columns, before, "{sql}");
    }
    // `period` is a column name, not PERIOD FOR.
    c.apply("app", "CREATE TABLE per (id INT, period INT)")
        .unwrap();
    assert_eq!(names(table(&c, "per")), ["id", "period"]);
    c.apply("app", "RENAME TABLE IF EXISTS never_was TO whatever")
        .unwrap();
    c.apply("app", "CREATE INDEX i ON per (id)").unwrap();
    c.apply("app", "CREATE OR REPLACE INDEX i ON per (period)")
        .unwrap();
    assert_eq!(keys(table(&c, "per")), ["i(period)"]);
}

#[test]
fn column_types_and_charsets_as_mariadb_resolves_them() {
    let c = catalog(&[
        "CREATE TABLE k (a VARCHAR(5) CHARACTER SET utf8, b NCHAR(3), c NVARCHAR(4), d CHAR(4) CHARACTER SET binary,
          e BLOB(100), f TEXT(1000), s SERIAL, g CHAR(9) BINARY, h VARCHAR(9) CHARSET latin1,
          x INT, gen BIGINT AS (CAST(x AS SIGNED)) VIRTUAL, ts TIMESTAMP, big MEDIUMTEXT CHARACTER SET LATIN1)",
    ]);
    let t = table(&c, "k");
    let col = |n: &str| t.column(n).unwrap().1.clone();
    assert_eq!(
        col("a").charset.as_deref(),
        Some("utf8mb3"),
        "utf8 is utf8mb3"
    );
    assert_eq!(col("b").charset.as_deref(), Some("utf8mb3"));
    assert_eq!(col("c").charset.as_deref(), Some("utf8mb3"));
    assert_eq!(
        (col("d").ty, col("d").charset),
        (ColumnType::Binary { bytes: 4 }, None)
    );
    assert_eq!(
        col("e").ty,
        ColumnType::Blob {
            size: LobSize::Tiny
        }
    );
    assert_eq!(
        col("f").ty,
        ColumnType::Text {
            size: LobSize::Regular
        }
    );
    assert_eq!(
        col("s").ty,
        ColumnType::Int {
            bytes: 8,
            unsigned: true
        }
    );
    assert!(!col("s").nullable);
    assert_eq!(t.unique_keys[0].columns, ["s"], "SERIAL is UNIQUE");
    assert_eq!(
        (col("g").ty, col("g").charset.as_deref()),
        (ColumnType::Char { chars: 9 }, Some("utf8mb4"))
    );
    assert_eq!(col("h").charset.as_deref(), Some("latin1"));
    assert_eq!(col("gen").generated, Some(Generated::Virtual));
    assert!(
        col("ts").nullable,
        "explicit_defaults_for_timestamp is ON in MariaDB 10.11"
    );
    assert_eq!(
        col("big").charset.as_deref(),
        Some("latin1"),
        "charset names are lower case"
    );

    // CONVERT TO a wider charset grows TEXT so it holds as many characters.
    let mut c = catalog(&["CREATE TABLE w (t TEXT, v VARCHAR(30000)) CHARACTER SET latin1"]);
    c.apply("app", "ALTER TABLE w CONVERT TO CHARACTER SET utf8mb4")
        .unwrap();
    let t = table(&c, "w");
    assert_eq!(
        ty(t, "t"),
        ColumnType::Text {
            size: LobSize::Medium
        }
    );
    assert_eq!(
        ty(t, "v"),
        ColumnType::Text {
            size: LobSize::Medium
        }
    );
}

#[test]
fn only_replicated_tables_are_tracked() {
    let wants = |_: &str, t: &str| !t.starts_with("skip");
    let mut c = catalog(&[]);
    c.apply_filtered("app", "CREATE TABLE skip_me (a INT)", &wants)
        .unwrap();
    assert!(c.table("app", "skip_me").is_none());
    for sql in [
        "ALTER TABLE skip_me ADD b INT",
        "CREATE INDEX i ON skip_me (a)",
        "DROP INDEX i ON skip_me",
        "RENAME TABLE skip_me TO skip_too",
    ] {
        let applied = c
            .apply_filtered("app", sql, &wants)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(applied.tables.is_empty(), "{sql}");
    }
    c.apply_filtered("app", "CREATE TABLE kept (a INT)", &wants)
        .unwrap();
    c.apply_filtered("app", "RENAME TABLE kept TO skip_now", &wants)
        .unwrap();
    assert!(
        c.table("app", "kept").is_none() && c.table("app", "skip_now").is_none(),
        "renamed out of replication"
    );
    let e = c
        .apply_filtered("app", "RENAME TABLE skip_too TO wanted", &wants)
        .unwrap_err();
    assert!(e.to_string().contains("its definition is unknown"), "{e}");
}

#[test]
fn databases_and_versioning() {
    let mut c = Catalog::new();
    c.server = schema::Database {
        charset: Some("latin1".into()),
        collation: Some("latin1_swedish_ci".into()),
    };
    c.apply("", "CREATE DATABASE d1").unwrap();
    c.apply("d1", "CREATE TABLE t (s TEXT)").unwrap();
    assert_eq!(
        c.table("d1", "t")
            .unwrap()
            .column("s")
            .unwrap()
            .1
            .charset
            .as_deref(),
        Some("latin1"),
        "server default"
    );
    c.apply("", "CREATE OR REPLACE DATABASE d1 CHARACTER SET utf8mb4")
        .unwrap();
    assert!(
        c.table("d1", "t").is_none(),
        "CREATE OR REPLACE DATABASE drops its tables"
    );
    // System versioning: the server's own row start and end, invisible and last (a
    // column added goes before them); dropped with the versioning.
    c.apply("d1", "CREATE TABLE v (a INT) WITH SYSTEM VERSIONING")
        .unwrap();
    c.apply("d1", "ALTER TABLE v ADD COLUMN b INT").unwrap();
    let v = c.table("d1", "v").unwrap();
    assert_eq!(names(v), ["a", "b", "row_start", "row_end"]);
    assert_eq!(v.versioning, Some(schema::Versioning::Implicit));
    assert!(v.columns[2].invisible && v.columns[3].period == Some(schema::Period::RowEnd));
    c.apply("d1", "ALTER TABLE v DROP SYSTEM VERSIONING")
        .unwrap();
    assert_eq!(names(c.table("d1", "v").unwrap()), ["a", "b"]);
    c.apply(
        "d1",
        "CREATE TABLE w (id INT PRIMARY KEY, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START, \
         e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e)) \
         WITH SYSTEM VERSIONING",
    )
    .unwrap();
    let w = c.table("d1", "w").unwrap();
    assert_eq!(names(w), ["id", "s", "e"]);
    assert_eq!(w.versioning, Some(schema::Versioning::Explicit));
    // A sequence is a table of the server's eight columns.
    c.apply("d1", "CREATE SEQUENCE s START WITH 10 INCREMENT BY 0")
        .unwrap();
    let s = c.table("d1", "s").unwrap();
    assert!(s.sequence && s.columns.len() == 8);
    c.apply("d1", "DROP SEQUENCE IF EXISTS s, nope").unwrap();
    assert!(c.table("d1", "s").is_none());
    // Column storage attributes (MySQL's COLUMN_FORMAT and STORAGE, a geometry's SRID)
    // change no value; COMPRESSED columns cannot be decoded and are refused by name.
    c.apply(
        "d1",
        "CREATE TABLE st (id INT, c VARCHAR(10) COLUMN_FORMAT DYNAMIC, d INT STORAGE MEMORY, \
         g POINT REF_SYSTEM_ID = 4326 NOT NULL)",
    )
    .unwrap();
    assert_eq!(names(c.table("d1", "st").unwrap()), ["id", "c", "d", "g"]);
    assert!(!c.table("d1", "st").unwrap().columns[3].nullable);
    let e = c
        .apply("d1", "CREATE TABLE z (b BLOB COMPRESSED)")
        .unwrap_err();
    assert!(e.to_string().contains("COMPRESSED columns"), "{e}");
    // MariaDB skips MySQL 5.7+ executable comments.
    c.apply(
        "d1",
        "CREATE TABLE h (a INT /*!80023 INVISIBLE */, b INT /*!50100 COMMENT 'kept' */)",
    )
    .unwrap();
    assert!(!c.table("d1", "h").unwrap().column("a").unwrap().1.invisible);
}
