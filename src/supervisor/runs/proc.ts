// Runs in the supervisor: what /proc says about processes.
import { readdirSync, readFileSync } from 'node:fs';

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null if there is no such process. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** This process's children, from /proc/self/task/TID/children. */
export function childPids(): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const text = readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      if (text.length > 0) for (const pid of text.split(' ')) out.push(Number(pid));
    }
  } catch {
    // No children file (kernel without CONFIG_PROC_CHILDREN): nothing to sweep.
  }
  return out;
}
