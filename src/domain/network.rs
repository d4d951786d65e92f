//! The monitored network as validated domain types: bureaus, rivers, stations, and who is told
//! about what (SPEC §7 routing).
//!
//! Built by `config` from the operator's file; read by the screen stage (targets, evaluated
//! parameters), the alert rules and message rendering. Pure data and lookups: no I/O.

use super::gb3838::{Class, WaterBody};
use super::hj212::CodeTarget;
use super::param::Param;
use super::profile::Precision;
use super::qc::{Plan, Tests};
use std::collections::BTreeMap;
use std::time::Duration;

/// Whom a bureau reaches through each channel: one list per channel, in config order (an
/// SMS channel numbers its messages by position, so the order is part of their keys).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contacts {
    /// Email addresses, checked by `config` (`duty@gz.example.org`).
    pub email: Vec<String>,
    /// Phone numbers, `+` and 5 to 15 digits, checked by `config` (`+8613800000000`).
    pub sms: Vec<String>,
    /// WeCom (企业微信) group robots, by label (`guangzhou.wecom[0]`): the robot's secret URL
    /// is the channel's, resolved at start; the label is all an outbox file holds.
    pub wecom: Vec<String>,
    /// DingTalk (钉钉) custom robots, by label (`guangzhou.dingtalk[0]`).
    pub dingtalk: Vec<String>,
    /// Signed JSON webhooks of the bureau's own platform, by label (`guangzhou.webhook[0]`).
    pub webhook: Vec<String>,
}

impl Contacts {
    /// Whether no channel has an address here.
    pub fn is_empty(&self) -> bool {
        self.email.is_empty()
            && self.sms.is_empty()
            && self.wecom.is_empty()
            && self.dingtalk.is_empty()
            && self.webhook.is_empty()
    }
}

/// An environmental bureau that receives alerts and may operate stations.
#[derive(Debug, Clone, PartialEq)]
pub struct Bureau {
    pub id: String,
    /// The display name (广州市生态环境局), used in messages.
    pub name: String,
    /// The duty officers (`[[bureau]] email`, `sms`): every water-quality alert.
    pub duty: Contacts,
    /// The station operators (`[[bureau]] operators`): the digest of station faults and
    /// offline stations. `None` where the bureau lists none; its duty officers then receive
    /// that digest.
    pub operators: Option<Contacts>,
    /// `[[bureau]] escalate_after` and `escalation`: whom to tell when this bureau has not
    /// acknowledged a yellow-or-above alert or incident in time; `None` where it sets neither.
    pub escalation: Option<Escalation>,
}

/// A bureau's escalation (SPEC §10): after `after` without its acknowledgement, a yellow or
/// higher alert or incident goes to `to` as well.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub after: Duration,
    pub to: Contacts,
}

impl Bureau {
    /// Who receives this bureau's digest of data-level alerts (station faults, offline): its
    /// operators where it has them, else its duty officers (SPEC §7 routing).
    pub fn data_contacts(&self) -> &Contacts {
        self.operators.as_ref().unwrap_or(&self.duty)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct River {
    pub id: String,
    pub name: String,
}

/// Which evaluation a station's class follows (WATER.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The full single-factor method over the station's evaluated parameters.
    Full,
    /// The national real-time publication's rule: pH, DO, CODMn, NH3-N, TP only, on values
    /// rounded half-to-even to this precision.
    NationalRealtime(Precision),
}

/// Where pollution at a station arrives next, and after how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Downstream {
    pub station: String,
    pub travel_time: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub name: String,
    /// Id of the river the station is on; always a configured river.
    pub river: String,
    /// Id of the bureau that operates the station; always a configured bureau.
    pub city: String,
    pub water_body: WaterBody,
    /// The class the section must meet; exceedances are judged against it.
    pub target: Class,
    /// A transboundary section: alerts go to every bureau, not only the operator.
    pub boundary: bool,
    /// Expected reporting interval, for offline detection.
    pub cadence: Duration,
    pub downstream: Option<Downstream>,
    pub hj212_mn: Option<String>,
    /// Pollutant codes this station's data logger uses differently from the standard map.
    pub hj212_codes: Vec<(String, CodeTarget)>,
    pub profile: Profile,
    /// Parameters that count for the station's class; others are stored but not judged.
    pub evaluated: Vec<Param>,
    /// QC tests per parameter where they differ from `qc::default_plan` (the global
    /// `[qc.<param>]` tables, then this station's own).
    pub qc: BTreeMap<Param, Tests>,
    /// Detection limits (in the parameter's unit) where they differ from
    /// [`NATIONAL_DETECTION_LIMITS`]: the station's `detection_limit` table.
    pub detection_limits: BTreeMap<Param, f64>,
}

/// Typical detection limits of the automatic analysers (WATER.md §5.6): NH3-N 0.025 mg/L
/// (HJ 535), TP 0.01 mg/L (GB 11893), CODMn 0.5 mg/L (GB 11892), TN 0.05 mg/L (HJ 636).
pub const NATIONAL_DETECTION_LIMITS: [(Param, f64); 4] = [
    (Param::Codmn, 0.5),
    (Param::Nh3n, 0.025),
    (Param::Tp, 0.01),
    (Param::Tn, 0.05),
];

impl Station {
    pub fn evaluates(&self, param: Param) -> bool {
        self.evaluated.contains(&param)
    }

    /// The QC tests this station runs on `param`: its configured tests at every spacing, or
    /// the defaults per spacing class.
    pub fn qc_plan(&self, param: Param) -> Plan {
        self.qc
            .get(&param)
            .map_or_else(|| super::qc::default_plan(param), |t| Plan::uniform(*t))
    }

    /// The detection limit of `param` at this station (the station's own, else the national
    /// default); `None` where neither exists.
    pub fn detection_limit(&self, param: Param) -> Option<f64> {
        self.detection_limits.get(&param).copied().or_else(|| {
            NATIONAL_DETECTION_LIMITS
                .iter()
                .find(|(p, _)| *p == param)
                .map(|(_, dl)| *dl)
        })
    }
}

/// The whole network. Invariant (checked by `config`): every id a station refers to exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub bureaus: Vec<Bureau>,
    pub rivers: Vec<River>,
    pub stations: Vec<Station>,
    /// Finds a station by id without comparing it with every configured one (each message
    /// looks its station up).
    pub index: StationIndex,
}

/// Station ids to their position in [`Network::stations`], built on the first lookup. A
/// lookup checks the entry it finds and falls back to a scan, so an index older than a change
/// of `stations` gives slower answers, never wrong ones.
#[derive(Default)]
pub struct StationIndex(std::sync::OnceLock<std::collections::HashMap<String, usize>>);

impl Clone for StationIndex {
    fn clone(&self) -> Self {
        StationIndex::default()
    }
}

/// A cache: equal networks are equal whatever their indexes hold.
impl PartialEq for StationIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for StationIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StationIndex")
    }
}

/// One instance's share of the stations when several instances split them (`[mqtt] shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether this instance owns `station`: a stable hash of the id (FNV-1a, 64 bit) modulo
    /// the count, the same on every machine and every version, so a station's trend windows
    /// and alert state live on exactly one instance.
    pub fn owns(&self, station: &str) -> bool {
        let hash = station.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        self.count <= 1 || hash % u64::from(self.count) == u64::from(self.index)
    }
}

impl Network {
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.position(id).and_then(|i| self.stations.get(i))
    }

    /// The position of station `id` in [`Network::stations`], found through the index, so a
    /// stage can name a station by number rather than carry (and look up) its id again.
    pub fn position(&self, id: &str) -> Option<usize> {
        let index = self.index.0.get_or_init(|| {
            self.stations
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect()
        });
        index
            .get(id)
            .copied()
            .filter(|&i| self.stations.get(i).is_some_and(|s| s.id == id))
            .or_else(|| self.stations.iter().position(|s| s.id == id))
    }

    pub fn river(&self, id: &str) -> Option<&River> {
        self.rivers.iter().find(|r| r.id == id)
    }

    pub fn bureau(&self, id: &str) -> Option<&Bureau> {
        self.bureaus.iter().find(|b| b.id == id)
    }

    /// Who hears of an incident: every bureau that an exceedance at its origin or at a
    /// station of its reach would reach, in configured order — so both cities as soon as the
    /// water heads for a boundary section.
    pub fn incident_recipients(&self, i: &super::incident::Incident) -> Vec<&Bureau> {
        let stations: Vec<&Station> = std::iter::once(i.origin.as_str())
            .chain(i.reach.iter().map(|r| r.station.as_str()))
            .filter_map(|id| self.station(id))
            .collect();
        self.bureaus
            .iter()
            .filter(|b| {
                stations.iter().any(|s| {
                    self.recipients(s, super::alert::Rule::Exceedance)
                        .iter()
                        .any(|r| r.id == b.id)
                })
            })
            .collect()
    }

    /// Which bureaus hear of an alert of `rule` raised at `station` (SPEC §7 routing): data
    /// alerts go to the operating city (to its [`Bureau::data_contacts`], in a digest); the rest, `upstream` warnings included
    /// (raised at the downstream station), to every bureau for a boundary section, otherwise
    /// to the operating city.
    pub fn recipients(&self, station: &Station, rule: super::alert::Rule) -> Vec<&Bureau> {
        // The upstream warning included: the other city must know what heads for the shared
        // section as early as the operator does (信息互通).
        let everyone = station.boundary && !rule.is_data();
        if everyone {
            self.bureaus.iter().collect()
        } else {
            self.bureau(&station.city).into_iter().collect()
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A two-bureau network shared by the domain tests.
    use super::*;

    pub fn station(id: &str, city: &str, target: u8, boundary: bool) -> Station {
        Station {
            id: id.to_string(),
            name: format!("{id} section"),
            river: "bei".to_string(),
            city: city.to_string(),
            water_body: WaterBody::River,
            target: Class::target(target).expect("fixture target class"),
            boundary,
            cadence: Duration::from_secs(4 * 3600),
            downstream: None,
            hj212_mn: None,
            hj212_codes: Vec::new(),
            profile: Profile::Full,
            evaluated: crate::domain::gb3838::default_evaluated(WaterBody::River),
            qc: BTreeMap::new(),
            detection_limits: BTreeMap::new(),
        }
    }

    /// [`network`] with 七星岗 draining into 石角(界牌), the boundary section, in 10 h.
    pub fn reach_network() -> Network {
        let mut n = network();
        if let Some(q) = n.stations.iter_mut().find(|s| s.id == "qixinggang") {
            q.downstream = Some(Downstream {
                station: "shijiao".into(),
                travel_time: Duration::from_secs(10 * 3600),
            });
        }
        n
    }

    pub fn network() -> Network {
        let bureau = |id: &str, name: &str| Bureau {
            id: id.to_string(),
            name: name.to_string(),
            duty: Contacts {
                email: vec![format!("duty@{id}.example.org")],
                ..Contacts::default()
            },
            operators: None,
            escalation: None,
        };
        Network {
            bureaus: vec![
                bureau("guangzhou", "广州市生态环境局"),
                bureau("qingyuan", "清远市生态环境局"),
            ],
            rivers: vec![River {
                id: "bei".to_string(),
                name: "北江".to_string(),
            }],
            stations: vec![
                station("shijiao", "qingyuan", 2, true),
                station("qixinggang", "qingyuan", 2, false),
            ],
            index: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::network;

    #[test]
    fn every_station_has_exactly_one_shard_and_the_hash_is_stable() {
        use super::Shard;
        let ids = [
            "shijiao",
            "qixinggang",
            "gaoqiao",
            "shiwei",
            "pa_fogang",
            "pa_boundary",
        ];
        for count in 1..=4 {
            for id in ids {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(id))
                    .count();
                assert_eq!(owners, 1, "{id} with {count} shards");
            }
        }
        // Fixed values (FNV-1a computed separately in Python): a change of hash would move
        // stations between running instances.
        const SHARD_0_OF_2: [bool; 6] = [true, true, true, true, false, false];
        let two: Vec<bool> = ids
            .iter()
            .map(|id| Shard { index: 0, count: 2 }.owns(id))
            .collect();
        assert_eq!(two, SHARD_0_OF_2);
    }

    #[test]
    fn routing_by_rule() {
        let net = network();
        use crate::domain::alert::Rule;
        let ids = |station: &str, rule: Rule| -> Vec<String> {
            let s = net.station(station).unwrap();
            net.recipients(s, rule)
                .iter()
                .map(|b| b.id.clone())
                .collect()
        };
        assert_eq!(ids("shijiao", Rule::Exceedance), ["guangzhou", "qingyuan"]);
        assert_eq!(ids("shijiao", Rule::Trend), ["guangzhou", "qingyuan"]);
        assert_eq!(ids("qixinggang", Rule::Exceedance), ["qingyuan"]);
        // Station faults go to the operators only, even at a boundary section.
        assert_eq!(ids("shijiao", Rule::StationFault), ["qingyuan"]);
        assert_eq!(ids("shijiao", Rule::Offline), ["qingyuan"]);
    }
}
