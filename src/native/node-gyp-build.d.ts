// node-gyp-build ships no types: the one function minivisor calls, its documented `path(dir)`.
declare module 'node-gyp-build' {
  const nodeGypBuild: {
    /** The addon's file for this platform under `dir`: build/Release, build/Debug, then prebuilds/<platform>-<arch>. */
    path(dir: string): string;
  };
  export default nodeGypBuild;
}
