//! The client process of the reliability suite's 10,000-connection case:
//! `reliability-clients ADDR CONNECTIONS MESSAGES` (see
//! `crest_tests::reliability::clients_main`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    crest_tests::reliability::clients_main(&args);
}
