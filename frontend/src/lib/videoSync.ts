// Several videos of one recording played as one: the first is the master, the others
// chase it, and the current frame index is reported as it plays. Frame f of a video at
// `fps` is shown from f/fps to (f+1)/fps.

/** The time to seek to for frame f: its middle, so rounding never lands on f-1. */
export function timeOf(frame: number, fps: number): number {
  return (frame + 0.5) / fps;
}

/** The frame shown at time t, clamped to [0, lastFrame]. */
export function frameOf(t: number, fps: number, lastFrame: number): number {
  return Math.max(0, Math.min(lastFrame, Math.floor(t * fps + 1e-3)));
}

export class VideoSync {
  private raf = 0;
  playing = false;

  /**
   * @param videos the elements, master first (a getter: Svelte binds them after mount).
   * @param onFrame told the frame index whenever it may have changed.
   * @param onStop told when playback stops by itself (the master ended or was paused).
   */
  constructor(
    private readonly videos: () => (HTMLVideoElement | undefined)[],
    private readonly fps: number,
    private readonly lastFrame: number,
    private readonly onFrame: (frame: number) => void,
    private readonly onStop: () => void = () => {},
  ) {}

  private all(): HTMLVideoElement[] {
    return this.videos().filter((v): v is HTMLVideoElement => v !== undefined);
  }

  private tick = () => {
    const [master, ...followers] = this.all();
    if (master) {
      this.onFrame(frameOf(master.currentTime, this.fps, this.lastFrame));
      // Followers chase the master; a drift over half a frame is corrected.
      for (const v of followers) {
        if (Math.abs(v.currentTime - master.currentTime) > 0.5 / this.fps) v.currentTime = master.currentTime;
      }
      if (this.playing && (master.ended || master.paused)) {
        this.playing = false;
        this.onStop();
      }
    }
    if (this.playing) this.raf = requestAnimationFrame(this.tick);
  };

  /** Play every video at `rate`, from the start if the master had ended. Rejects with the
   * browser's reason when a video cannot play. */
  async play(rate = 1): Promise<void> {
    const all = this.all();
    if (all[0]?.ended) for (const v of all) v.currentTime = 0;
    for (const v of all) v.playbackRate = rate;
    await Promise.all(all.map((v) => v.play()));
    this.playing = true;
    this.raf = requestAnimationFrame(this.tick);
  }

  pause(): void {
    for (const v of this.all()) v.pause();
    this.playing = false;
    cancelAnimationFrame(this.raf);
    this.tick();
  }

  setRate(rate: number): void {
    for (const v of this.all()) v.playbackRate = rate;
  }

  /** Show frame f (clamped) in every video; returns the frame shown. */
  seek(frame: number): number {
    const clamped = Math.max(0, Math.min(this.lastFrame, frame));
    for (const v of this.all()) v.currentTime = timeOf(clamped, this.fps);
    this.onFrame(clamped);
    return clamped;
  }

  destroy(): void {
    cancelAnimationFrame(this.raf);
    this.playing = false;
  }
}
