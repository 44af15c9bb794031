"""Seeds moto with what AWS would hold for the rehearsal, and prints `export KEY=value`
lines for world.env.

- DynamoDB: the migration-state table (pk/sk, on demand, TTL on expires_at)
- SNS: the ops and validation topics, each with an SQS queue subscribed (so tests can
  read what was published, envelope and message attributes included)
- SSM: /migration/db/<suffix>/... and /migration/app/<suffix>/...
- per region: a VPC with two subnets, an ALB whose port-80 listener forwards 100/0 to a
  blue and a green target group (two instances each), and the CloudWatch alarms the
  rehearsal flips, all in state OK
- per region: an ECS cluster with one task definition family and one service per colour
  (blue 2 tasks, green 0: the idle colour runs nothing outside a release). moto's ECS
  reports runningCount = desiredCount at once and never registers tasks in a target group;
  the two instances registered in each group stand in for the colour's tasks, so target
  health (from ELBv2) is always healthy here — tests deregister them to play tasks not ready.
"""

BLUE_TASKS = 2


def seed_ecs(region, endpoint, suffix, groups, subnets, vpc):
    """One cluster, a task definition family and a service per colour; returns the names."""
    ecs = client("ecs", region, endpoint)
    cluster = f"ecs-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    tasks_sg = client("ec2", region, endpoint).create_security_group(
        GroupName=f"tasks-{suffix}", Description="the application's tasks", VpcId=vpc
    )["GroupId"]
    services = {}
    for color in ["blue", "green"]:
        family = f"app-{color}-{suffix}"
        ecs.register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "app", "image": "public.ecr.aws/nginx/nginx:stable", "essential": True,
                                   "portMappings": [{"containerPort": 80}]}],
        )
        name = f"app-{color}-{suffix}"
        ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=family,
            desiredCount=BLUE_TASKS if color == "blue" else 0,
            launchType="FARGATE",
            loadBalancers=[{"targetGroupArn": groups[color], "containerName": "app", "containerPort": 80}],
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [tasks_sg]}},
        )
        # moto reports runningCount 0 at creation; an update makes it follow desiredCount.
        ecs.update_service(cluster=cluster, service=name, desiredCount=BLUE_TASKS if color == "blue" else 0)
        services[color] = name
    return cluster, services

import argparse
import json
import sys

import boto3

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]
# The functions with a database role of their own (infra/sql/roles.sql: cutover_<function>).
FUNCTIONS = ["data-validator", "lag-probe", "failover", "cutover"]


def client(service, region, endpoint):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def log(message):
    print(f"[world] moto: {message}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--suffix", required=True)
    parser.add_argument("--ports", required=True, help="us-east-1,eu-west-1,ap-southeast-1,source")
    parser.add_argument("--app-password-file", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--replicator-password-file", required=True)
    parser.add_argument("--role-password-dir", required=True, help="role_<function>_password of each function's role")
    args = parser.parse_args()
    suffix, endpoint = args.suffix, args.endpoint
    ports = args.ports.split(",")
    app_password = open(args.app_password_file).read().strip()
    ca_pem = open(args.ca).read()
    replicator_password = open(args.replicator_password_file).read().strip()
    role_passwords = {
        fn: open(f"{args.role_password_dir}/role_{fn.replace('-', '_')}_password").read().strip() for fn in FUNCTIONS
    }
    out = {}

    # The state table is a global table: a replica in every region (the router replicates
    # between them, tests/env/aws_router.py --global-table).
    table = f"migration-state-{suffix}"
    for region in REGIONS:
        ddb = client("dynamodb", region, endpoint)
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    log(f"DynamoDB global table {table} (replicas in {', '.join(REGIONS)})")

    sns = client("sns", "us-east-1", endpoint)
    sqs = client("sqs", "us-east-1", endpoint)
    for kind in ["ops", "validation"]:
        topic_arn = sns.create_topic(Name=f"cutover-{kind}-{suffix}")["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"cutover-{kind}-capture-{suffix}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
        out[f"CUTOVER_{kind.upper()}_TOPIC_ARN"] = topic_arn
        out[f"CUTOVER_{kind.upper()}_QUEUE_URL"] = queue_url
        log(f"SNS topic cutover-{kind}-{suffix} -> SQS cutover-{kind}-capture-{suffix}")

    # Every region's functions read their own region's ops topic and SSM parameters.
    for region in REGIONS[1:]:
        arn = client("sns", region, endpoint).create_topic(Name=f"cutover-ops-{suffix}")["TopicArn"]
        out[f"CUTOVER_OPS_TOPIC_ARN_{region.upper().replace('-', '_')}"] = arn
    out["CUTOVER_OPS_TOPIC_ARN_US_EAST_1"] = out["CUTOVER_OPS_TOPIC_ARN"]
    db = f"/migration/db/{suffix}"
    app = f"/migration/app/{suffix}"
    parameters = [
        (f"{db}/writer-endpoint", f"localhost:{ports[0]}", "String"),
        (f"{db}/database", "app", "String"),
        # The application's role: what the cutover freezes; no function connects as it.
        (f"{db}/user", "cutover", "String"),
        (f"{db}/password", app_password, "SecureString"),
        # The validator reads the source as its own read-only role.
        (f"{db}/source-dsn",
         f"postgresql://cutover_data_validator:{role_passwords['data-validator']}@localhost:{ports[3]}/app", "SecureString"),
        (f"{db}/ca-bundle", ca_pem, "String"),
        # The cutover function: the source as its own role (freeze, sequences, reverse subscription),
        # and how the source reaches the target for reverse replication after the switch.
        (f"{db}/source-endpoint", f"localhost:{ports[3]}", "String"),
        (f"{db}/source-admin-dsn",
         f"postgresql://cutover_cutover:{role_passwords['cutover']}@localhost:{ports[3]}/app", "SecureString"),
        (f"{db}/reverse-conninfo",
         f"host=localhost port={ports[0]} dbname=app user=replicator password={replicator_password} "
         f"sslmode=verify-full sslrootcert={args.ca}", "SecureString"),
        (f"{app}/active-region", "us-east-1", "String"),
        # Where the application writes: the source until the cutover switches it to the target.
        (f"{app}/writes-to", "source", "String"),
        (f"{app}/traffic-policy", json.dumps({"plan": "canary-10-5m"}), "String"),
    ]
    for region, port in zip(REGIONS, ports[:3]):
        parameters.append((f"{db}/reader-endpoint/{region}", f"localhost:{port}", "String"))
    for fn in FUNCTIONS:
        parameters.append((f"{db}/users/{fn}", f"cutover_{fn.replace('-', '_')}", "String"))
        parameters.append((f"{db}/passwords/{fn}", role_passwords[fn], "SecureString"))
    for region in REGIONS:
        ssm = client("ssm", region, endpoint)
        for name, value, kind in parameters:
            ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)
    log(f"SSM {db}/* and {app}/* ({len(parameters)} parameters, a copy in each of {', '.join(REGIONS)})")

    for region in REGIONS:
        ec2 = client("ec2", region, endpoint)
        elb = client("elbv2", region, endpoint)
        cw = client("cloudwatch", region, endpoint)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
            for i, zone in enumerate(zones)
        ]
        lb = elb.create_load_balancer(Name=f"alb-{suffix}", Subnets=subnets, Type="application", Scheme="internet-facing")[
            "LoadBalancers"
        ][0]["LoadBalancerArn"]
        image = ec2.describe_images()["Images"][0]["ImageId"]
        groups = {}
        for color in ["blue", "green"]:
            tg = elb.create_target_group(
                Name=f"tg-{color}-{suffix}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance"
            )["TargetGroups"][0]["TargetGroupArn"]
            instances = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, SubnetId=subnets[0])["Instances"]
            elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": i["InstanceId"], "Port": 80} for i in instances])
            groups[color] = tg
        listener = elb.create_listener(
            LoadBalancerArn=lb,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": groups["blue"], "Weight": 100},
                            {"TargetGroupArn": groups["green"], "Weight": 0},
                        ]
                    },
                }
            ],
        )["Listeners"][0]["ListenerArn"]
        alarms = [
            ("app-5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", 10, 60),
            ("app-p99-latency", "AWS/ApplicationELB", "TargetResponseTime", None, 0.2, 60),
            ("replication-lag", "Cutover", "ReplicationLagMs", "Maximum", 1000, 10),
            ("primary-writer-unavailable", "Cutover", "WriterAvailable", "Minimum", 1, 60),
        ]
        for name, namespace, metric, stat, threshold, period in alarms:
            spec = dict(
                AlarmName=f"{name}-{suffix}",
                Namespace=namespace,
                MetricName=metric,
                Period=period,
                EvaluationPeriods=1,
                Threshold=threshold,
                ComparisonOperator="LessThanThreshold" if name.startswith("primary") else "GreaterThanThreshold",
            )
            if stat:
                spec["Statistic"] = stat
            else:
                spec["ExtendedStatistic"] = "p99"
            cw.put_metric_alarm(**spec)
            cw.set_alarm_state(AlarmName=f"{name}-{suffix}", StateValue="OK", StateReason="rehearsal start")
        cluster, services = seed_ecs(region, endpoint, suffix, groups, subnets, vpc)
        key = region.upper().replace("-", "_")
        out[f"CUTOVER_ECS_CLUSTER_{key}"] = cluster
        out[f"CUTOVER_BLUE_SERVICE_{key}"] = services["blue"]
        out[f"CUTOVER_GREEN_SERVICE_{key}"] = services["green"]
        out[f"CUTOVER_LISTENER_ARN_{key}"] = listener
        out[f"CUTOVER_BLUE_TG_ARN_{key}"] = groups["blue"]
        out[f"CUTOVER_GREEN_TG_ARN_{key}"] = groups["green"]
        out[f"CUTOVER_ALB_ARN_{key}"] = lb
        log(f"{region}: ALB alb-{suffix} (blue 100 / green 0), {len(alarms)} alarms OK; ECS {cluster}: blue {BLUE_TASKS} tasks, green 0")

    # The traffic-shifter's settings: every region's listener and groups in one variable each.
    for var, kind in [("LISTENER_ARNS", "LISTENER_ARN"), ("BLUE_TG_ARNS", "BLUE_TG_ARN"), ("GREEN_TG_ARNS", "GREEN_TG_ARN"),
                      ("ECS_CLUSTERS", "ECS_CLUSTER"), ("BLUE_SERVICES", "BLUE_SERVICE"), ("GREEN_SERVICES", "GREEN_SERVICE")]:
        out[f"CUTOVER_{var}"] = ",".join(
            f"{region}={out['CUTOVER_' + kind + '_' + region.upper().replace('-', '_')]}" for region in REGIONS
        )
    out["CUTOVER_SERVICE"] = "app"
    out["CUTOVER_FAILOVER_DRIVER"] = "postgres-streaming"
    out["CUTOVER_FAILOVER_ALARMS"] = f"primary-writer-unavailable-{suffix}"
    out["CUTOVER_WATCHED_ALARMS"] = f"app-5xx-{suffix},app-p99-latency-{suffix}"
    # The side without traffic keeps its tasks this long after a deployment ends.
    out["CUTOVER_SCALE_DOWN_BAKE"] = "0s"
    for key, value in out.items():
        print(f"export {key}={value}")


if __name__ == "__main__":
    main()
