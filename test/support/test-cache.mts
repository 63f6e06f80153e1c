// Where the tests keep what is slow to make (the debootstrapped Debian images,
// the ssh image, the systemd test host): one directory, rebuilt piece by piece
// when missing. NSPAWN_RUNNER_TEST_CACHE points elsewhere; an empty directory
// shows what a fresh machine sees (.ci/run does that on every run).
export const testCache = process.env.NSPAWN_RUNNER_TEST_CACHE || '/var/cache/nspawn-runner-tests';
