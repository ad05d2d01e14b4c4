"""AWS: the ECS actuator and its CloudWatch, Application Auto Scaling and Cost Explorer readers.

Only this subpackage imports boto3 and botocore (the S3 dependency probe goes
through `jarvis.actuators.aws.clients` too). Nothing is imported here, so
naming the package costs nothing until the composition root builds it.
"""
