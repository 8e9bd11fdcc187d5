// Where volumes go on an instance: the device names users give (as EC2's
// Linux instances name them) and the virtio targets the guest gets, in the
// order they are handed out (vda is the root disk, vdx…vdz instance store).

/** The device names AttachVolume and RunInstances' mappings take for a volume. */
export const ATTACHABLE_DEVICE = /^\/dev\/(sd|xvd|vd)[b-z]$/;

/** vdb…vdw: at most 22 volumes per instance (vdx…vdz are for instance store: instanceTypes.ts). */
export const VOLUME_TARGETS: readonly string[] = Array.from({ length: 22 }, (_, i) => `vd${String.fromCharCode("b".charCodeAt(0) + i)}`);
