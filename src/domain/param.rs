//! The fixed vocabulary of measured parameters (SPEC §4): payload keys, units and names.
//!
//! Fed by the payload decoders (which map JSON keys or HJ 212 codes to a [`Param`]); feeds
//! classification, storage (the key is the InfluxDB field name) and message rendering (the
//! Chinese and English names). Pure data: no I/O.

use std::fmt;

/// One measured parameter. The order of the variants is the order used in stored points and
/// rendered messages, so that output is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    Temp,
    Ph,
    Do,
    Cond,
    Turb,
    Codmn,
    Cod,
    Bod5,
    Nh3n,
    Tp,
    Tn,
    Cu,
    Zn,
    F,
    Se,
    As,
    Hg,
    Cd,
    Cr6,
    Pb,
    Cn,
    Phenol,
    Oil,
    Las,
    S2,
    Fcoli,
    Chla,
}

/// How a unit is written in messages and what kind of quantity it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Celsius,
    Dimensionless,
    MilligramPerLitre,
    MicrosiemensPerCm,
    Ntu,
    PerLitre,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Celsius => "°C",
            Unit::Dimensionless => "",
            Unit::MilligramPerLitre => "mg/L",
            Unit::MicrosiemensPerCm => "µS/cm",
            Unit::Ntu => "NTU",
            Unit::PerLitre => "个/L",
        }
    }
}

impl Param {
    /// Every parameter, in display order.
    pub const ALL: [Param; 27] = [
        Param::Temp,
        Param::Ph,
        Param::Do,
        Param::Cond,
        Param::Turb,
        Param::Codmn,
        Param::Cod,
        Param::Bod5,
        Param::Nh3n,
        Param::Tp,
        Param::Tn,
        Param::Cu,
        Param::Zn,
        Param::F,
        Param::Se,
        Param::As,
        Param::Hg,
        Param::Cd,
        Param::Cr6,
        Param::Pb,
        Param::Cn,
        Param::Phenol,
        Param::Oil,
        Param::Las,
        Param::S2,
        Param::Fcoli,
        Param::Chla,
    ];

    /// The payload key, which is also the stored field name.
    pub fn key(self) -> &'static str {
        match self {
            Param::Temp => "temp",
            Param::Ph => "ph",
            Param::Do => "do",
            Param::Cond => "cond",
            Param::Turb => "turb",
            Param::Codmn => "codmn",
            Param::Cod => "cod",
            Param::Bod5 => "bod5",
            Param::Nh3n => "nh3n",
            Param::Tp => "tp",
            Param::Tn => "tn",
            Param::Cu => "cu",
            Param::Zn => "zn",
            Param::F => "f",
            Param::Se => "se",
            Param::As => "as",
            Param::Hg => "hg",
            Param::Cd => "cd",
            Param::Cr6 => "cr6",
            Param::Pb => "pb",
            Param::Cn => "cn",
            Param::Phenol => "phenol",
            Param::Oil => "oil",
            Param::Las => "las",
            Param::S2 => "s2",
            Param::Fcoli => "fcoli",
            Param::Chla => "chla",
        }
    }

    /// Parses a payload key; `None` for keys outside SPEC §4.
    pub fn from_key(key: &str) -> Option<Param> {
        // A match on the text, not a scan comparing it with every key: each value of every
        // reading is looked up here.
        Some(match key {
            "temp" => Param::Temp,
            "ph" => Param::Ph,
            "do" => Param::Do,
            "cond" => Param::Cond,
            "turb" => Param::Turb,
            "codmn" => Param::Codmn,
            "cod" => Param::Cod,
            "bod5" => Param::Bod5,
            "nh3n" => Param::Nh3n,
            "tp" => Param::Tp,
            "tn" => Param::Tn,
            "cu" => Param::Cu,
            "zn" => Param::Zn,
            "f" => Param::F,
            "se" => Param::Se,
            "as" => Param::As,
            "hg" => Param::Hg,
            "cd" => Param::Cd,
            "cr6" => Param::Cr6,
            "pb" => Param::Pb,
            "cn" => Param::Cn,
            "phenol" => Param::Phenol,
            "oil" => Param::Oil,
            "las" => Param::Las,
            "s2" => Param::S2,
            "fcoli" => Param::Fcoli,
            "chla" => Param::Chla,
            _ => return None,
        })
    }

    pub fn unit(self) -> Unit {
        match self {
            Param::Temp => Unit::Celsius,
            Param::Ph => Unit::Dimensionless,
            Param::Cond => Unit::MicrosiemensPerCm,
            Param::Turb => Unit::Ntu,
            Param::Fcoli => Unit::PerLitre,
            _ => Unit::MilligramPerLitre,
        }
    }

    /// The name duty officers read first (GB 3838-2002 wording).
    pub fn name_zh(self) -> &'static str {
        match self {
            Param::Temp => "水温",
            Param::Ph => "pH值",
            Param::Do => "溶解氧",
            Param::Cond => "电导率",
            Param::Turb => "浊度",
            Param::Codmn => "高锰酸盐指数",
            Param::Cod => "化学需氧量",
            Param::Bod5 => "五日生化需氧量",
            Param::Nh3n => "氨氮",
            Param::Tp => "总磷",
            Param::Tn => "总氮",
            Param::Cu => "铜",
            Param::Zn => "锌",
            Param::F => "氟化物",
            Param::Se => "硒",
            Param::As => "砷",
            Param::Hg => "汞",
            Param::Cd => "镉",
            Param::Cr6 => "铬(六价)",
            Param::Pb => "铅",
            Param::Cn => "氰化物",
            Param::Phenol => "挥发酚",
            Param::Oil => "石油类",
            Param::Las => "阴离子表面活性剂",
            Param::S2 => "硫化物",
            Param::Fcoli => "粪大肠菌群",
            Param::Chla => "叶绿素a",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Param::Temp => "water temperature",
            Param::Ph => "pH",
            Param::Do => "dissolved oxygen",
            Param::Cond => "conductivity",
            Param::Turb => "turbidity",
            Param::Codmn => "permanganate index (CODMn)",
            Param::Cod => "chemical oxygen demand (COD)",
            Param::Bod5 => "BOD5",
            Param::Nh3n => "ammonia nitrogen (NH3-N)",
            Param::Tp => "total phosphorus",
            Param::Tn => "total nitrogen",
            Param::Cu => "copper",
            Param::Zn => "zinc",
            Param::F => "fluoride",
            Param::Se => "selenium",
            Param::As => "arsenic",
            Param::Hg => "mercury",
            Param::Cd => "cadmium",
            Param::Cr6 => "chromium (VI)",
            Param::Pb => "lead",
            Param::Cn => "cyanide",
            Param::Phenol => "volatile phenol",
            Param::Oil => "petroleum oil",
            Param::Las => "anionic surfactant (LAS)",
            Param::S2 => "sulfide",
            Param::Fcoli => "fecal coliform",
            Param::Chla => "chlorophyll a",
        }
    }

    /// True for concentrations and counts, which can never be negative. Temperature can.
    pub fn is_non_negative(self) -> bool {
        self != Param::Temp
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// HJ 212 per-value data flag (SPEC §4, WATER.md §4.6). Only `N` and `T` mark a value that may
/// be judged; the others mark maintenance, faults or setpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFlag {
    N,
    F,
    M,
    S,
    D,
    C,
    T,
    B,
    /// A flag outside HJ 212-2017 (the 2005 `P`, numeric flags, vendor letters), as data
    /// loggers send them: kept, and the value treated as invalid.
    Other(char),
}

impl DataFlag {
    pub fn parse(s: &str) -> Option<DataFlag> {
        Some(match s {
            "N" => DataFlag::N,
            "F" => DataFlag::F,
            "M" => DataFlag::M,
            "S" => DataFlag::S,
            "D" => DataFlag::D,
            "C" => DataFlag::C,
            "T" => DataFlag::T,
            "B" => DataFlag::B,
            _ => return None,
        })
    }

    pub fn letter(self) -> char {
        match self {
            DataFlag::N => 'N',
            DataFlag::F => 'F',
            DataFlag::M => 'M',
            DataFlag::S => 'S',
            DataFlag::D => 'D',
            DataFlag::C => 'C',
            DataFlag::T => 'T',
            DataFlag::B => 'B',
            DataFlag::Other(c) => c,
        }
    }

    /// Whether a value with this flag is valid environmental data (N normal; T above the
    /// measuring range, valid but censored).
    pub fn is_valid(self) -> bool {
        matches!(self, DataFlag::N | DataFlag::T)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_unique() {
        for p in Param::ALL {
            assert_eq!(Param::from_key(p.key()), Some(p), "{p:?}");
        }
        let mut keys: Vec<_> = Param::ALL.iter().map(|p| p.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Param::ALL.len());
        assert_eq!(Param::from_key("nitrate"), None);
    }

    #[test]
    fn flags_valid_only_for_n_and_t() {
        let valid: String = "NFMSDCTB"
            .chars()
            .filter_map(|c| DataFlag::parse(&c.to_string()))
            .filter(|f| f.is_valid())
            .map(DataFlag::letter)
            .collect();
        assert_eq!(valid, "NT");
        assert_eq!(DataFlag::parse("X"), None);
    }
}
