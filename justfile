# bitsfarm recipes. `just --list` is the menu; the logic lives in the bitsfarm binary.

# Show the recipes.
default:
    @just --list

# Run a scenario on the simulated farm (name or path): `just scenario crash-after-forward --seed 7`.
scenario NAME *ARGS:
    cargo run --release -- scenario {{NAME}} {{ARGS}}

# List the shipped scenarios.
scenarios:
    cargo run --release -- scenarios

# Run one BITS node and the server application on real sockets.
serve *ARGS:
    cargo run --release -- serve {{ARGS}}

# Upload one file with bitsfarm's BITS client.
upload FILE URL *ARGS:
    cargo run --release -- upload {{FILE}} {{URL}} {{ARGS}}

# Sweep crash-after-forward over BITSHostId, session durability, the crash point and transaction-id
# dedupe; writes reports/sweeps/crash-settings/ (its report.md is the golden sample in reports/golden/).
sweep *ARGS:
    cargo run --release -- sweep crash-after-forward --name crash-settings --seeds 100 --set 'fault[0].restart_after_s=3600' --set backend.dedupe=true --vary farm.host_id=true,false --vary farm.session_state=durable,volatile --vary 'fault[0].point=after-forward,final-ack-ready' --vary clients.transaction_id=false,true {{ARGS}}

# Sweep a simulated week of farm-week over BITSHostId, session state and transaction ids (2 seeds,
# ~5 min on 2 cores); writes reports/sweeps/farm-week-settings/ (its report.md is the golden
# sample reports/golden/farm-week-settings.md).
sweep-week *ARGS:
    cargo run --release -- sweep farm-week --name farm-week-settings --seeds 2 --vary farm.host_id=false,true --vary farm.session_state=durable,volatile --vary workload.transaction_id=false,true {{ARGS}}

# Regenerate a run's or a sweep's reports from its saved JSON.
report DIR:
    cargo run --release -- report {{DIR}}

# Measure the simulator and serve against their targets; writes reports/bench.json
# (`just bench --only live`: the 1 GiB upload through serve).
bench *ARGS:
    cargo run --release -- bench {{ARGS}}

# Where a simulated run's CPU time goes, by class (perf; docs/performance.md).
profile *ARGS:
    bash docs/profile {{ARGS}}

# Search generated scenarios for property failures: `just explore --runs 10000`.
explore *ARGS:
    cargo run --release -- explore {{ARGS}}

# Run the property suite with CASES cases per property (CI runs the default, 4,096).
prop CASES="4096":
    PROPTEST_CASES={{CASES}} cargo test -p explore --profile ci --locked --test it

# Fuzz the live node: SEEDS x 500 generated requests in memory (paused clock) and a loopback
# campaign of REQUESTS requests on 4 connections (CI runs 8 seeds and 3,000 requests).
fuzz SEEDS="256" REQUESTS="1000000":
    FUZZ_SEEDS={{SEEDS}} FUZZ_REQUESTS={{REQUESTS}} cargo test -p fuzz --profile ci --locked --test it -- --nocapture the_node_answers a_loopback a_digest

# Load and soak: CLIENTS clients x FILES files at once, with transaction ids, through a proxy
# that cuts 5% of connections; every file delivered with one effect (CI runs 16 x 3).
soak CLIENTS="200" FILES="10":
    SOAK_CLIENTS={{CLIENTS}} SOAK_FILES={{FILES}} cargo test -p fuzz --profile ci --locked --test it -- --nocapture a_soak

# Run the whole test suite (what CI runs).
test:
    cargo test --workspace --profile ci --locked

# The HTML reports in headless Chromium (needs Debian's `chromium`): no overlapping text,
# zoomed duplicate chains, what to change.
browser:
    cargo test -p bitsfarm --profile ci --locked --test it browser -- --ignored

# The README's start, command by command, as a new user runs it.
readme:
    bash .ci/readme

# Regenerate docs/run-report.png and docs/sweep-report.png (needs Debian's `chromium`).
screenshots:
    bash docs/screenshots

# Format the code.
fmt:
    cargo fmt --all

# Lint the code (warnings are errors).
lint:
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run
