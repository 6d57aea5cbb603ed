import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

/**
 * CPU caps for database nodes, so that on a small machine the databases, not the load generator or
 * the API, are what a scaling experiment measures. A node's postmaster and its children go into a
 * cgroup of their own with a CPU quota; backends forked later inherit it. cgroup v2 (cpu.max, current
 * Debian) and v1 (cpu.cfs_quota_us) are both handled. Needs root.
 */
const V2_ROOT = "/sys/fs/cgroup";
const V1_ROOT = "/sys/fs/cgroup/cpu";
// A short period spreads a node's quota evenly: with 100 ms, a burst spends it early and the node's
// every query then stalls until the next period, which shows as latency spikes, not as less capacity.
const PERIOD_US = 20_000;

/** The group's directory, created with the quota set; throws where cgroups cannot be written. */
function cappedGroup(name: string, cpus: number): string {
  const quota = String(Math.round(cpus * PERIOD_US));
  if (existsSync(`${V2_ROOT}/cgroup.controllers`)) {
    const controllers = readFileSync(`${V2_ROOT}/cgroup.subtree_control`, "utf8");
    if (!controllers.split(/\s+/).includes("cpu")) writeFileSync(`${V2_ROOT}/cgroup.subtree_control`, "+cpu");
    const group = `${V2_ROOT}/${name}`;
    if (!existsSync(group)) mkdirSync(group);
    writeFileSync(`${group}/cpu.max`, `${quota} ${PERIOD_US}`);
    return group;
  }
  const group = `${V1_ROOT}/${name}`;
  if (!existsSync(group)) mkdirSync(group);
  writeFileSync(`${group}/cpu.cfs_period_us`, String(PERIOD_US));
  writeFileSync(`${group}/cpu.cfs_quota_us`, quota);
  return group;
}

/** A process and its direct children (a postmaster's backends and auxiliary processes). */
function withChildren(pid: number): number[] {
  const pids = [pid];
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
      if (ppid === pid) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

/** Caps `pid` and its children at `cpus` CPUs; false (with the reason printed) where that is impossible. */
export function capProcessTree(name: string, pid: number, cpus: number): boolean {
  try {
    const group = cappedGroup(name, cpus);
    for (const member of withChildren(pid)) {
      try {
        writeFileSync(`${group}/cgroup.procs`, String(member));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error; // ended meanwhile
      }
    }
    return true;
  } catch (error) {
    console.warn(`could not cap ${name} (${(error as Error).message}); it runs uncapped`);
    return false;
  }
}

/** CPU seconds a process has used so far (user + system), from /proc. */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // After the command: state is field 3; utime and stime are fields 14 and 15 (in clock ticks).
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}
