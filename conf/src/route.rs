//! `[[syncer.route]]`: the names upstream schemas and tables have downstream.

use std::collections::HashMap;

use crate::model::Route;

/// Where each routed schema and table goes downstream. Names match exactly (as the server
/// compares them with `lower_case_table_names = 0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    schemas: HashMap<String, String>,
    tables: HashMap<(String, String), (String, String)>,
    /// Each table rule's target, with its source.
    targets: HashMap<(String, String), (String, String)>,
}

impl Routes {
    /// The rules of a valid configuration (see `Config::validate`).
    pub fn new(rules: &[Route]) -> Routes {
        let mut routes = Routes::default();
        for r in rules.iter().filter(|r| r.tbl_name.is_none()) {
            if let Some(to) = &r.target_db_name {
                routes.schemas.insert(r.db_name.clone(), to.clone());
            }
        }
        for r in rules {
            let Some(table) = &r.tbl_name else { continue };
            let schema = r
                .target_db_name
                .clone()
                .or_else(|| routes.schemas.get(&r.db_name).cloned())
                .unwrap_or_else(|| r.db_name.clone());
            let name = r.target_tbl_name.clone().unwrap_or_else(|| table.clone());
            let source = (r.db_name.clone(), table.clone());
            routes
                .targets
                .insert((schema.clone(), name.clone()), source.clone());
            routes.tables.insert(source, (schema, name));
        }
        routes
    }

    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty() && self.tables.is_empty()
    }

    /// The downstream name of schema `schema`, when it has another.
    pub fn schema(&self, schema: &str) -> Option<&str> {
        self.schemas.get(schema).map(String::as_str)
    }

    /// The downstream `(schema, table)` of `schema.table`, when it has another name.
    pub fn table(&self, schema: &str, table: &str) -> Option<(String, String)> {
        // Asked for every rows event: without table rules, no key is made.
        if self.tables.is_empty() {
            return self
                .schema(schema)
                .map(|s| (s.to_owned(), table.to_owned()));
        }
        if let Some(to) = self.tables.get(&(schema.to_owned(), table.to_owned())) {
            return Some(to.clone());
        }
        self.schema(schema)
            .map(|s| (s.to_owned(), table.to_owned()))
    }

    /// The source of the table rule whose target `schema.table` would also go to,
    /// by its own name or its schema's rule, when it has no table rule itself: the rows
    /// of both would merge in one downstream table. Only the upstream's tables tell
    /// (`check-config` cannot see them), so the drainer asks for each table it meets.
    pub fn collision(&self, schema: &str, table: &str) -> Option<String> {
        if self.targets.is_empty()
            || self
                .tables
                .contains_key(&(schema.to_owned(), table.to_owned()))
        {
            return None;
        }
        self.targets
            .get(&self.target(schema, table))
            .map(|(s, t)| format!("{s}.{t}"))
    }

    /// `schema.table`'s name downstream (its own when not routed).
    pub fn target(&self, schema: &str, table: &str) -> (String, String) {
        self.table(schema, table)
            .unwrap_or_else(|| (schema.to_owned(), table.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(db: &str, tbl: Option<&str>, to_db: Option<&str>, to_tbl: Option<&str>) -> Route {
        Route {
            db_name: db.into(),
            tbl_name: tbl.map(Into::into),
            target_db_name: to_db.map(Into::into),
            target_tbl_name: to_tbl.map(Into::into),
        }
    }

    #[test]
    fn a_table_rule_wins_and_follows_its_schema() {
        let r = Routes::new(&[
            route("app", Some("orders"), None, Some("orders_a")),
            route("app", None, Some("app_eu"), None),
            route("shop", Some("items"), Some("archive"), None),
        ]);
        let pair = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        assert_eq!(r.table("app", "orders"), Some(pair("app_eu", "orders_a")));
        assert_eq!(r.table("app", "users"), Some(pair("app_eu", "users")));
        assert_eq!(r.table("shop", "items"), Some(pair("archive", "items")));
        assert_eq!(r.table("shop", "other"), None);
        assert_eq!(r.target("shop", "other"), pair("shop", "other"));
        assert_eq!(r.schema("app"), Some("app_eu"));
        assert_eq!(r.schema("shop"), None);
        assert_eq!(r.table("App", "orders"), None, "names match exactly");
    }

    #[test]
    fn a_table_going_where_a_table_rule_goes_is_a_collision() {
        let r = Routes::new(&[
            route("app", Some("orders"), None, Some("orders_old")),
            route("shop", None, Some("eu"), None),
            route("crm", Some("items"), Some("eu"), None),
        ]);
        // By its own name, by its schema's rule, and not for the rules' own sources.
        assert_eq!(r.collision("app", "orders_old"), Some("app.orders".into()));
        assert_eq!(r.collision("shop", "items"), Some("crm.items".into()));
        assert_eq!(r.collision("app", "orders"), None);
        assert_eq!(r.collision("crm", "items"), None);
        assert_eq!(r.collision("shop", "orders"), None);
        assert_eq!(r.collision("app", "users"), None);
        assert_eq!(
            Routes::new(&[route("a", None, Some("b"), None)]).collision("a", "t"),
            None
        );
    }
}
