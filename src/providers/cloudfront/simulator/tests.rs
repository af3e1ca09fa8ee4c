//! Tests of the AWS simulator.
