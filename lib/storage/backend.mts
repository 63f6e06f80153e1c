// How a job's writable root is made and removed. Each backend only adds its
// own flags to the shared nspawn command line.

export type BackendName = 'btrfs' | 'overlay' | 'tmpfs';

export interface LayerOptions {
  /** A user namespace for the machine: the backend decides how its files get the machine's ids. */
  privateUsers: boolean;
}

export interface StorageBackend {
  readonly name: BackendName;
  /**
   * Makes the job's writable layer under jobDir (which exists and is empty)
   * and returns the nspawn flags that put image + layer at the machine's root.
   */
  prepare(imagePath: string, jobDir: string, options: LayerOptions): Promise<string[]>;
  /** Removes what prepare made, after the machine has stopped. Safe to repeat. */
  release(jobDir: string): Promise<void>;
}
