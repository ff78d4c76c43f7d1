"""Published apps: analyze and publish a workflow (`service`, shared by the REST API, the studio and the command
line), find an app and its versions (`lookup`), and each public app's typed OpenAPI (`openapi`)."""
