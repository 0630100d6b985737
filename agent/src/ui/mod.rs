//! The agent's front-ends: [`text`] for a person at a terminal, [`json`] for scripts. Each is
//! a task that shows the core's events and sends back the customer's inputs.

pub mod json;
pub mod text;
