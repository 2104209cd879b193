//! Positions as stored: plain fields that serialize, and parse back to a [`Position`].

use serde::{Deserialize, Serialize};

use super::{BinlogCoords, GtidSet, MariaGtidList, MysqlGtidSet, Position, PositionError};

/// A [`Position`] in a form that serializes: the coordinates, the GTID state as text, and
/// its flavour (an empty GTID state does not tell it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRecord {
    pub file: String,
    pub pos: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtids: Option<String>,
    /// `mariadb` or `mysql`, with `gtids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
}

impl From<&Position> for PositionRecord {
    fn from(p: &Position) -> Self {
        PositionRecord {
            file: p.coords.file.clone(),
            pos: p.coords.pos,
            gtids: p.gtids.as_ref().map(|g| g.to_string()),
            flavor: p.gtids.as_ref().map(|g| match g {
                GtidSet::MariaDb(_) => "mariadb".into(),
                GtidSet::MySql(_) => "mysql".into(),
            }),
        }
    }
}

impl TryFrom<&PositionRecord> for Position {
    type Error = PositionError;

    fn try_from(r: &PositionRecord) -> Result<Self, Self::Error> {
        let gtids = match (r.flavor.as_deref(), &r.gtids) {
            (Some("mariadb"), Some(g)) => Some(GtidSet::MariaDb(g.parse::<MariaGtidList>()?)),
            (Some("mysql"), Some(g)) => Some(GtidSet::MySql(g.parse::<MysqlGtidSet>()?)),
            (None, None) => None,
            (flavor, g) => {
                return Err(PositionError::new(
                    "stored position",
                    &format!("{flavor:?} {g:?}"),
                    "a GTID state needs its flavour (mariadb or mysql)",
                ))
            }
        };
        Ok(Position {
            coords: BinlogCoords::new(r.file.clone(), r.pos),
            gtids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_flavours_and_none() {
        for gtids in [
            None,
            Some("0-1-5,3-2-9"),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"),
            Some(""),
        ] {
            let p = Position {
                coords: BinlogCoords::new("binlog.000003", 1234),
                gtids: gtids.map(|g| {
                    if g.contains(':') {
                        GtidSet::MySql(g.parse().unwrap())
                    } else {
                        GtidSet::MariaDb(g.parse().unwrap())
                    }
                }),
            };
            let r = PositionRecord::from(&p);
            let json = serde_json::to_string(&r).unwrap();
            let back: PositionRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(Position::try_from(&back).unwrap(), p, "{json}");
        }
        let bad = PositionRecord {
            file: "f".into(),
            pos: 4,
            gtids: Some("0-1-1".into()),
            flavor: None,
        };
        assert!(Position::try_from(&bad).is_err());
    }
}
