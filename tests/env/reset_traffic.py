"""Puts the local world's traffic back to the start: every listener 100 % blue,
no deployment record, the watched alarms OK, blue at its seeded 2 tasks and green at 0. Used between stateful samples by
tests/lambda-invoke.sh; reads the world from the environment (world.env)."""

import os

import boto3


def main() -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    listeners = dict(i.split("=", 1) for i in os.environ["CUTOVER_LISTENER_ARNS"].split(","))
    blues = dict(i.split("=", 1) for i in os.environ["CUTOVER_BLUE_TG_ARNS"].split(","))
    greens = dict(i.split("=", 1) for i in os.environ["CUTOVER_GREEN_TG_ARNS"].split(","))
    for region, listener in listeners.items():
        elb = boto3.client("elbv2", region_name=region, endpoint_url=endpoint)
        elb.modify_listener(
            ListenerArn=listener,
            DefaultActions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": blues[region], "Weight": 100},
                            {"TargetGroupArn": greens[region], "Weight": 0},
                        ]
                    },
                }
            ],
        )
        cw = boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint)
        for alarm in os.environ.get("CUTOVER_WATCHED_ALARMS", "").split(","):
            if alarm:
                cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="reset by the rehearsal")
    clusters = dict(i.split("=", 1) for i in os.environ.get("CUTOVER_ECS_CLUSTERS", "").split(",") if i)
    for color, count in [("BLUE", 2), ("GREEN", 0)]:
        services = dict(i.split("=", 1) for i in os.environ.get(f"CUTOVER_{color}_SERVICES", "").split(",") if i)
        for region, service in services.items():
            ecs = boto3.client("ecs", region_name=region, endpoint_url=endpoint)
            ecs.update_service(cluster=clusters[region], service=service, desiredCount=count)
    ddb = boto3.client("dynamodb", region_name=os.environ["CUTOVER_PRIMARY_REGION"], endpoint_url=endpoint)
    service = os.environ.get("CUTOVER_SERVICE", "app")
    ddb.delete_item(
        TableName=os.environ["CUTOVER_STATE_TABLE"],
        Key={"pk": {"S": f"DEPLOYMENT#{service}"}, "sk": {"S": "CURRENT"}},
    )


if __name__ == "__main__":
    main()
