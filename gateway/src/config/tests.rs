use std::path::Path;

use super::*;

fn parse_err(text: &str) -> ConfigError {
    parse(Path::new("test.yaml"), text.to_owned()).unwrap_err()
}

#[test]
fn probe() {
    for t in [
        "protos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstrem: users\n",
        "protos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstream: users\n    timeout: 3 parsecs\n",
        "protos: {sources: [p]}\nlimits:\n  max_headers: lots\n",
        "protos: {sources: [p]}\nupstreams:\n  u: {endpoints: [\"${NOPE_NOT_SET:?set it to the users endpoint}\"]}\n",
        "protos: {sources: [p]\n",
        "routes: []\n",
    ] {
        println!("{}\n----", parse_err(t));
    }
}
