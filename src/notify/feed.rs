//! Feeds: what a channel for other systems (a bureau's platform, a city dashboard) is given
//! for each alert transition and incident event — one [`Event`] with the facts a machine
//! needs — instead of a text rendered per bureau.
//!
//! Fed by the judging task (`alerts`), which calls [`items`] and [`incident_items`] for every
//! transition and incident event it makes durable; feeds the outbox with one item per event
//! and feed channel (a channel answers [`super::Channel::feed`]), keyed
//! `<event key>.<suffix>`, so the same event always gets the same key and a broker outage
//! delays the item but never loses it. Which events a feed carries is decided here, once
//! for every feed: every transition of a rule that notifies, silenced or not and whether or
//! not it belongs to an incident (a silence spares people, not the record other systems
//! keep; an incident's alerts are told to people through the incident), except reminders,
//! which change nothing; and every incident event.

use super::outbox::Item;
use super::{Channel, Origin};
use crate::domain::alert::{Kind, Transition};
use crate::domain::gb3838;
use crate::domain::incident::{EventKind, IncidentEvent};
use crate::domain::network::{Bureau, Network};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Whether an [`Event`] is an alert's or an incident's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Alert,
    Incident,
}

impl Subject {
    /// `alert` or `incident`.
    pub fn key(self) -> &'static str {
        match self {
            Subject::Alert => "alert",
            Subject::Incident => "incident",
        }
    }
}

/// One alert transition or incident event as a feed publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub subject: Subject,
    /// The alert id or the incident id.
    pub id: String,
    /// The alert's rule (`exceedance`, `trend`, …); `None` for an incident.
    pub rule: Option<&'static str>,
    /// `data`, `blue` … `red`: the alert's level, the incident's highest.
    pub level: &'static str,
    /// The state after the event: `firing` or `resolved` for an alert, `open` or `ended` for
    /// an incident.
    pub state: &'static str,
    /// What happened: `fired`, `escalated` or `resolved` for an alert; `opened`,
    /// `escalated`, `spread`, `arrival_confirmed`, `arrival_not_confirmed` or `ended` for an
    /// incident.
    pub event: &'static str,
    /// The station concerned: the alert's, or the incident event's (its origin unless the
    /// event concerns a station of the reach).
    pub station: String,
    /// The parameter key (`nh3n`, …); `None` for station-level alerts (`offline`).
    pub param: Option<&'static str>,
    /// The value that caused the event, in the parameter's unit; `None` for incident events
    /// of the clock.
    pub value: Option<f64>,
    /// The station's target-class limit for the parameter (for pH the upper bound), in its
    /// unit; `None` where it has none.
    pub limit: Option<f64>,
    /// Reading time of the value (the event's time for an incident).
    pub ts: DateTime<Utc>,
    /// The incident an alert belongs to.
    pub incident: Option<String>,
    /// Ids of the bureaus that hear of it, in configured order.
    pub bureaus: Vec<String>,
    /// The short Chinese text (the SMS's, at most 70 characters).
    pub text: String,
    /// The event's key, the same as the base of its notifications' idempotency keys
    /// (`<alert id>.<kind>.<reading time>`, or `<incident id>.<event>[.<station>]`):
    /// a subscriber drops a message whose key it has seen.
    pub key: String,
}

/// The target-class limit of `param` at station `id`.
fn limit(net: &Network, id: &str, param: Option<crate::domain::param::Param>) -> Option<f64> {
    let station = net.station(id)?;
    let limits = gb3838::limits(param?, station.water_body)?;
    Some(limits.limit(station.target).number())
}

fn ids(bureaus: Vec<&Bureau>) -> Vec<String> {
    bureaus.into_iter().map(|b| b.id.clone()).collect()
}

/// The feed event of one alert transition; `None` for the transitions feeds do not carry (see
/// the module docs) and for a station not in the network.
pub fn alert_event(t: &Transition, net: &Network) -> Option<Event> {
    if !t.rule.notifies() || t.kind == Kind::Reminder {
        return None;
    }
    let station = net.station(&t.station)?;
    let text = crate::domain::message::text(t, net)?;
    Some(Event {
        subject: Subject::Alert,
        id: t.alert_id.clone(),
        rule: Some(t.rule.key()),
        level: t.level.key(),
        state: t.state.key(),
        event: t.kind.key(),
        station: t.station.clone(),
        param: t.param.map(|p| p.key()),
        value: Some(t.evidence.value),
        limit: limit(net, &t.station, t.param),
        ts: t.evidence.ts,
        incident: t.incident.clone(),
        bureaus: ids(net.recipients(station, t.rule)),
        text: text.short,
        key: Origin::alert(t).key,
    })
}

/// The feed event of one incident event; `None` when its origin is not in the network.
pub fn incident_event(e: &IncidentEvent, net: &Network) -> Option<Event> {
    let text = crate::domain::message::incident::text(e, net)?;
    let i = &e.incident;
    let station = e.kind.station().unwrap_or(&i.origin).to_string();
    let value = match &e.kind {
        EventKind::ArrivalConfirmed { value, .. } => Some(*value),
        _ => e.cause.as_ref().map(|t| t.evidence.value),
    };
    Some(Event {
        subject: Subject::Incident,
        id: i.id.clone(),
        rule: None,
        level: i.level.key(),
        state: if matches!(e.kind, EventKind::Ended) {
            "ended"
        } else {
            "open"
        },
        event: e.kind.key(),
        limit: limit(net, &station, Some(i.param)),
        station,
        param: Some(i.param.key()),
        value,
        ts: e.ts,
        incident: None,
        bureaus: ids(net.incident_recipients(i)),
        text: text.short,
        key: Origin::incident(e).key,
    })
}

/// The outbox items of `event`: one per feed channel, in channel order.
fn feed(event: &Event, origin: &Origin, channels: &[Arc<dyn Channel>]) -> Vec<Item> {
    channels
        .iter()
        .filter_map(|channel| {
            let draft = channel.feed(event)?;
            Some(Item {
                key: format!("{}.{}", origin.key, draft.suffix),
                channel: channel.key().to_string(),
                alert_id: origin.alert_id.clone(),
                state: origin.state.clone(),
                level: origin.level.clone(),
                station: Some(event.station.clone()),
                // Not a bureau's: the event's bureaus are in the payload.
                bureau: String::new(),
                bureau_name: String::new(),
                to: draft.to,
                subject: draft.subject,
                text: draft.text,
            })
        })
        .collect()
}

/// The feed items of one alert transition (none for those feeds do not carry).
pub fn items(t: &Transition, net: &Network, channels: &[Arc<dyn Channel>]) -> Vec<Item> {
    match alert_event(t, net) {
        Some(event) => feed(&event, &Origin::alert(t), channels),
        None => Vec::new(),
    }
}

/// The feed items of one incident event.
pub fn incident_items(
    e: &IncidentEvent,
    net: &Network,
    channels: &[Arc<dyn Channel>],
) -> Vec<Item> {
    match incident_event(e, net) {
        Some(event) => feed(&event, &Origin::incident(e), channels),
        None => Vec::new(),
    }
}
