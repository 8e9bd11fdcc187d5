-- Launch permissions of images (images.ts, imageAttributes.ts): who besides
-- its owner may see and launch an image. An image with none is private; the
-- grantee 'all' makes it public, an account id shares it with that account.
CREATE TABLE image_launch_permissions (
  image_id text NOT NULL REFERENCES images (id),
  grantee  text NOT NULL CHECK (grantee = 'all' OR grantee ~ '^[0-9]{12}$'),
  PRIMARY KEY (image_id, grantee)
);
-- DescribeImages reads the images shared with the caller or with everyone.
CREATE INDEX image_launch_permissions_grantee ON image_launch_permissions (grantee, image_id);
