//! End-to-end tests of the gateway over HTTP: each test spawns the app on port 0 with its own
//! temporary data dir and the in-process simulated network (`real_driver`: the real WhatsApp
//! driver against loopback listeners).

mod helpers;

mod api_docs;
mod auth;
mod bad_input;
mod calls;
mod campaign_csv;
mod campaigns;
mod chats;
mod dashboard;
mod delivery;
mod events;
mod hardening;
mod instances;
mod media;
mod media_files;
mod messages;
mod metrics;
mod outbound;
mod persistence;
mod quickstart;
mod quotas;
mod reactions;
mod real_driver;
mod rich;
mod seen;
mod series;
mod settings;
mod simnet;
mod spintax;
mod sticky;
mod webhooks;
