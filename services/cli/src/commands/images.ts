// Image (AMI) commands.
import { compute } from "@cirrus/proto";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { grid } from "../output.js";
import { FILTERS, MAX_RESULTS, NEXT_TOKEN, TAG_SPECIFICATIONS } from "./common-params.js";

const api = compute.ComputeService;

export const imageCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "register-image",
    summary: "Register a qcow2 disk image as an AMI",
    rpc: api.registerImage,
    request: compute.RegisterImageRequest,
    response: compute.RegisterImageResponse,
    params: [
      { flag: "name", kind: "string", description: "the image name", required: true },
      { flag: "image-location", kind: "string", description: "path of the qcow2 root disk (the same on every host)" },
      { flag: "description", kind: "string", description: "a description" },
      { flag: "architecture", kind: "string", description: "x86_64 or arm64" },
      { flag: "root-device-name", kind: "string", description: "e.g. /dev/vda" },
      { flag: "virtualization-type", kind: "string", description: "hvm" },
      { flag: "kernel-location", kind: "string", description: "kernel file on the hosts, for direct kernel boot" },
      { flag: "ramdisk-location", kind: "string", description: "initrd file on the hosts, for direct kernel boot" },
      { flag: "kernel-command-line", kind: "string", description: "kernel command line, for direct kernel boot" },
      {
        flag: "block-device-mappings",
        kind: "structure-list",
        description: "DeviceName=/dev/vda,Ebs={VolumeSize=<GiB>,DeleteOnTermination=true}",
      },
      TAG_SPECIFICATIONS,
    ],
  }),
  defineCommand({
    name: "describe-images",
    summary: "Describe images (all pages unless --max-results or --next-token is given)",
    rpc: api.describeImages,
    request: compute.DescribeImagesRequest,
    response: compute.DescribeImagesResponse,
    params: [
      { flag: "image-ids", kind: "string-list", description: "image IDs" },
      { flag: "owners", kind: "string-list", description: "owner account IDs, or self" },
      FILTERS("name, state, architecture, image-id, tag:<key>, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "Images",
    paginate: true,
    table: (res) =>
      grid(res.Images, {
        ImageId: (i) => i.ImageId,
        Name: (i) => i.Name,
        State: (i) => i.State,
        Architecture: (i) => i.Architecture,
        RootDeviceName: (i) => i.RootDeviceName,
        CreationDate: (i) => i.CreationDate,
      }),
  }),
  defineCommand({
    name: "deregister-image",
    summary: "Deregister an image",
    rpc: api.deregisterImage,
    request: compute.DeregisterImageRequest,
    response: compute.DeregisterImageResponse,
    params: [{ flag: "image-id", kind: "string", description: "the image", required: true }],
  }),
];
