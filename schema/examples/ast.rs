use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
fn main() {
    for sql in std::env::args().skip(1) {
        match Parser::parse_sql(&MySqlDialect {}, &sql) {
            Ok(stmts) => println!("{sql}\n{:#?}\n", stmts),
            Err(e) => println!("{sql}\nERROR {e}\n"),
        }
    }
}
