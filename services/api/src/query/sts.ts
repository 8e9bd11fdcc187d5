// STS GetCallerIdentity at the Query endpoint: Terraform's AWS provider and
// `aws sts get-caller-identity` call it (signed for service `sts`) to learn
// the account. It is the one STS action Cirrus answers; its XML is STS's
// (a Result wrapper and ResponseMetadata, unlike EC2's).

/** The response for a caller of `accountId` (12 digits; the request id is a UUID, so nothing needs escaping). */
export function callerIdentityXml(accountId: string, requestId: string): string {
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
    + `<Arn>arn:aws:iam::${accountId}:root</Arn><UserId>${accountId}</UserId><Account>${accountId}</Account>`
    + `</GetCallerIdentityResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`;
}
