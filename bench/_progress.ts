/**
 * The driver's progress: a bar (@std/cli's ProgressBar) that names the cell
 * being measured and the time left, on a terminal; one line per cell
 * otherwise (a log file gets no carriage returns).
 *
 * The time left is the sum of the remaining cells' estimates, scaled by how
 * far off the estimates of the finished cells were; a cell measured in an
 * earlier pass is estimated by what it took then.
 *
 * @module
 */

import { ProgressBar } from "@std/cli/unstable-progress-bar";

/** One unit of work: what it is called and how long it should take. */
export interface Step {
  /** Stable across passes, to reuse what it took last time as its estimate. */
  id: string;
  label: string;
  estimateSeconds: number;
}

function _duration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

/** Progress over a known list of steps. */
export class Progress {
  #steps: Step[];
  #next = 0;
  #took = new Map<string, number>();
  #estimatedDone = 0;
  #actualDone = 0;
  #started = 0;
  #current = "starting";
  #bar: ProgressBar | undefined;

  constructor(steps: Step[]) {
    this.#steps = steps;
    if (Deno.stderr.isTerminal()) {
      this.#bar = new ProgressBar({
        max: Math.max(1, steps.length),
        barLength: 24,
        clear: true,
        formatter: (f) =>
          `[${f.styledTime}] [${f.progressBar}] ${f.value}/${f.max} ${this.#current} · ${this.#left()} left`,
      });
    }
  }

  #estimate(step: Step): number {
    return this.#took.get(step.id) ?? step.estimateSeconds;
  }

  /** Seconds left: the estimates of what remains, corrected by the error so far. */
  #secondsLeft(): number {
    const scale = this.#estimatedDone > 0
      ? Math.min(5, Math.max(0.2, this.#actualDone / this.#estimatedDone))
      : 1;
    let left = 0;
    for (let i = this.#next; i < this.#steps.length; i++) {
      const step = this.#steps[i];
      left += this.#took.has(step.id)
        ? this.#took.get(step.id)!
        : step.estimateSeconds * scale;
    }
    if (this.#started) {
      left -= (performance.now() - this.#started) / 1000;
    }
    return Math.max(0, left);
  }

  #left(): string {
    return `about ${_duration(this.#secondsLeft())}`;
  }

  /** Starts the next step (the steps run in the order given). */
  start(): Step {
    const step = this.#steps[this.#next];
    this.#current = step.label;
    this.#started = performance.now();
    return step;
  }

  /** Ends the current step with a one-line result. */
  done(result: string): void {
    const step = this.#steps[this.#next];
    const seconds = (performance.now() - this.#started) / 1000;
    if (!this.#took.has(step.id)) {
      this.#estimatedDone += step.estimateSeconds;
      this.#actualDone += seconds;
    }
    this.#took.set(step.id, seconds);
    this.#next++;
    this.#started = 0;
    if (this.#bar) {
      this.#bar.value = this.#next;
    } else {
      console.error(
        `[${this.#next}/${this.#steps.length}] ${step.label}: ${result} ` +
          `in ${seconds.toFixed(1)} s (${this.#left()} left)`,
      );
    }
  }

  /** Prints a line that stays, above the bar. */
  note(text: string): void {
    if (this.#bar) console.error(`\r\u001b[K${text}`);
    else console.error(text);
  }

  /** Removes the bar. */
  async stop(): Promise<void> {
    await this.#bar?.stop();
  }
}
