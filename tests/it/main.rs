//! Integration tests: real servers, real clients. One binary, so RocksDB is linked once.

mod auth;
mod cli;
mod cluster;
mod commands;
mod concurrency;
mod databases;
mod durability;
mod expiry;
mod fuzz;
mod harness;
mod lists;
mod protocol;
mod sets;
mod split;
mod transactions;
mod values;
mod zsets;
