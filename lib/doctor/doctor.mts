// nspawn-runner doctor: every check, in the order an admin sets things up.
// Checks never throw: a check that cannot look says so in its finding.
import type { DoctorContext } from './context.mts';
import { checkCgroups, checkHostMode, checkNetwork, checkNspawn, checkRun, checkUserNamespaces } from './host-checks.mts';
import { error, type Finding } from './report.mts';
import { checkConfigFile, checkImages, checkRunnerConfig, checkStateDirectory } from './setup-checks.mts';
import { checkAnsible, checkBootstrappers, checkBtrfsProgs, checkOciTools, checkRunnerBinary, checkServiceTools } from './tool-checks.mts';

async function guarded(check: string, run: () => Finding[] | Promise<Finding[]>): Promise<Finding[]> {
  try {
    return await run();
  } catch (problem) {
    return [error(check, `the check itself failed: ${(problem as Error).message}`)];
  }
}

export async function runDoctor(ctx: DoctorContext): Promise<Finding[]> {
  // config.toml first: its --default-image is what jobs without image: get.
  let defaultImage: string | undefined;
  const runnerConfig = await guarded('config.toml', async () => {
    const facts = await checkRunnerConfig(ctx);
    defaultImage = facts.defaultImage;
    return facts.findings;
  });
  const findings: Finding[][] = [
    await guarded('configuration', () => checkConfigFile(ctx)),
    await guarded('state directory', () => checkStateDirectory(ctx)),
    await guarded('host mode', () => checkHostMode(ctx)),
    await guarded('systemd-nspawn', () => checkNspawn(ctx)),
    await guarded('cgroups', () => checkCgroups(ctx)),
    await guarded('/run', () => checkRun()),
    await guarded('user namespaces', () => checkUserNamespaces(ctx)),
    await guarded('network', () => checkNetwork(ctx)),
    await guarded('bootstrapper', () => checkBootstrappers(ctx)),
    await guarded('btrfs-progs', () => checkBtrfsProgs(ctx)),
    await guarded('ansible', () => checkAnsible(ctx)),
    await guarded('skopeo, umoci', () => checkOciTools(ctx)),
    await guarded('pasta (services)', () => checkServiceTools(ctx)),
    await guarded('gitlab-runner binary', () => checkRunnerBinary(ctx)),
    await guarded('images', () => checkImages(ctx, defaultImage)),
    runnerConfig,
  ];
  return findings.flat();
}
