import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { name, shortRegion } from "../config";
import { applicationTaskPolicy, assumedBy, policyJson } from "./iam";

export interface ApplicationArgs {
  suffix: string;
  region: string;
  provider: aws.Provider;
  vpcId: pulumi.Input<string>;
  publicSubnetIds: pulumi.Input<string>[];
  privateSubnetIds: pulumi.Input<string>[];
  albSecurityGroupId: pulumi.Input<string>;
  taskSecurityGroupId: pulumi.Input<string>;
  image: string;
  containerPort: number;
  desiredCount: number;
  greenDesiredCount: number;
  maxCount: number;
  architecture: "ARM64" | "X86_64";
  containerInsights: boolean;
  /** An ACM certificate of this region: HTTPS on 443, and HTTP redirects to it. */
  certificateArn?: string;
  /** The parameters the application reads at run time (the cutover's `writes-to`, the source's and the writer's endpoints). */
  readsParameterArns: pulumi.Input<string>[];
}

/** The TLS policy of the HTTPS listener: TLS 1.3 and 1.2 only. */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/** Port 80's action when HTTPS exists: a permanent redirect to the same URL over HTTPS. */
export function redirectToHttps() {
  return [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }];
}

export const COLORS = ["blue", "green"] as const;
export type Color = (typeof COLORS)[number];

/** The ECS service of one color in one region; the dashboard names it too. */
export function serviceName(color: Color, suffix: string, region: string): string {
  return name(`app-${color}`, suffix, region);
}

/**
 * The listener's options. The traffic-shifter owns the weights once deployed: without
 * ignoring changes to the default actions, the next `pulumi up` would reset them to 100/0
 * (the aws-cdk#36649 trap).
 */
export function listenerOptions(base: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...base, ignoreChanges: ["defaultActions"] };
}

/** A colour's task definition family in one region. */
export function taskFamily(color: Color, suffix: string, region: string): string {
  return name(`app-${color}`, suffix, region);
}

/**
 * A colour's service options. Once deployed, the traffic-shifter owns each colour's count
 * (scaled up for a release, to zero after it) and its task definition (the idle colour moves
 * to its family's latest revision when a release starts), and autoscaling owns scale-outs:
 * `pulumi up` must change neither, or a release made by the shifter is reverted and a new
 * image rolls the live colour.
 */
export function serviceOptions(base: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...base, ignoreChanges: ["desiredCount", "taskDefinition"] };
}

/**
 * A colour's task definition options. A release names its image in the shifter's `start`
 * (a new revision of the idle colour's family, registered by the shifter), so `containerImage`
 * is only each family's first image: a changed image in config must not register revisions
 * that a later release would pick up, and a replaced definition must not deregister the
 * revision the live colour runs (`skipDestroy` on the resource).
 */
export function taskDefinitionOptions(base: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...base, ignoreChanges: ["containerDefinitions"] };
}

/**
 * A colour's scalable target options. The traffic-shifter owns the floor (min capacity): the
 * idle colour's rises with its count for a release and returns to 0 when it retires; `pulumi up`
 * must not put it back, or autoscaling scales a retired colour up again (or a live one in).
 */
export function scalingTargetOptions(base: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...base, ignoreChanges: ["minCapacity"] };
}

/** The initial split: everything to blue. */
export function initialForward(blueArn: pulumi.Input<string>, greenArn: pulumi.Input<string>) {
  return [{
    type: "forward",
    forward: {
      targetGroups: [
        { arn: blueArn, weight: 100 },
        { arn: greenArn, weight: 0 },
      ],
    },
  }];
}

/**
 * One region's application: ECS cluster, a Fargate task definition per colour (256 CPU / 512
 * MiB) with logs, a blue service (the live one at first) and a green one at zero tasks, each registered in its own target group behind one ALB
 * whose listener forwards to both by weight, each autoscaled on CPU and on memory.
 */
export class Application extends pulumi.ComponentResource {
  readonly listenerArn: pulumi.Output<string>;
  readonly blueTargetGroupArn: pulumi.Output<string>;
  readonly greenTargetGroupArn: pulumi.Output<string>;
  /** `targetgroup/<name>/<id>`, the TargetGroup dimension of the ALB metrics. */
  readonly targetGroupArnSuffixes: Record<Color, pulumi.Output<string>>;
  readonly albArnSuffix: pulumi.Output<string>;
  readonly albDnsName: pulumi.Output<string>;
  readonly clusterName: pulumi.Output<string>;
  /** The roles a colour's task definition names (execution, application): UpdateService passes them. */
  readonly taskRoleArns: pulumi.Output<string>[];
  /** Both colours' Application Auto Scaling targets: the shifter moves their floors. */
  readonly scalingTargetArns: pulumi.Output<string>[] = [];

  constructor(id: string, args: ApplicationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("cutover:application:Application", id, {}, opts);
    const o = { parent: this, provider: args.provider };
    const n = (type: string) => name(type, args.suffix, args.region);

    const cluster = new aws.ecs.Cluster(n("ecs"), {
      name: n("ecs"),
      settings: [{ name: "containerInsights", value: args.containerInsights ? "enabled" : "disabled" }],
    }, o);
    const logs = new aws.cloudwatch.LogGroup(n("log-app"), {
      name: `/ecs/${n("app")}`,
      retentionInDays: 30,
    }, o);
    const executionRole = new aws.iam.Role(n("role-task-exec"), {
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole" }],
      }),
    }, o);
    new aws.iam.RolePolicyAttachment(n("role-task-exec-policy"), {
      role: executionRole.name,
      policyArn: "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    }, o);
    // The application's own role (not the agent's): it reads where its writes go.
    const taskRole = new aws.iam.Role(n("role-task-app"), { assumeRolePolicy: assumedBy("ecs-tasks.amazonaws.com") }, o);
    new aws.iam.RolePolicy(n("policy-task-app"), { role: taskRole.id, policy: policyJson(applicationTaskPolicy(args.readsParameterArns)) }, o);
    // A colour is a task definition: one family per colour. A release (`start` with `image`)
    // registers a revision of the idle colour's family and moves that colour's service to it.
    const taskDefinition = (color: Color) => new aws.ecs.TaskDefinition(n(`task-app-${color}`), {
      family: taskFamily(color, args.suffix, args.region),
      cpu: "256",
      memory: "512",
      networkMode: "awsvpc",
      requiresCompatibilities: ["FARGATE"],
      runtimePlatform: { cpuArchitecture: args.architecture, operatingSystemFamily: "LINUX" },
      executionRoleArn: executionRole.arn,
      taskRoleArn: taskRole.arn,
      containerDefinitions: logs.name.apply((group) => JSON.stringify([{
        name: "app",
        image: args.image,
        essential: true,
        portMappings: [{ containerPort: args.containerPort, protocol: "tcp" }],
        logConfiguration: {
          logDriver: "awslogs",
          options: { "awslogs-group": group, "awslogs-region": args.region, "awslogs-stream-prefix": `app-${color}` },
        },
      }])),
      skipDestroy: true,
    }, taskDefinitionOptions(o));

    const alb = new aws.lb.LoadBalancer(n("alb"), {
      name: name("alb", args.suffix, shortRegion(args.region)),
      loadBalancerType: "application",
      internal: false,
      subnets: args.publicSubnetIds,
      securityGroups: [args.albSecurityGroupId],
      enableDeletionProtection: false,
    }, o);
    const group = (color: string) => new aws.lb.TargetGroup(n(`tg-${color}`), {
      name: name(`tg-${color}`, args.suffix, shortRegion(args.region)),
      port: args.containerPort,
      protocol: "HTTP",
      targetType: "ip",
      vpcId: args.vpcId,
      deregistrationDelay: 30,
      healthCheck: { path: "/", healthyThreshold: 2, unhealthyThreshold: 3, interval: 15, matcher: "200-399" },
    }, o);
    const blue = group("blue");
    const green = group("green");
    // The weighted listener (the one the traffic-shifter moves): HTTPS with a certificate,
    // plain HTTP without one (the documented default); with HTTPS, port 80 only redirects.
    const https = args.certificateArn !== undefined;
    const listener = new aws.lb.Listener(n("listener"), {
      loadBalancerArn: alb.arn,
      port: https ? 443 : 80,
      protocol: https ? "HTTPS" : "HTTP",
      certificateArn: args.certificateArn,
      sslPolicy: https ? TLS_POLICY : undefined,
      defaultActions: initialForward(blue.arn, green.arn),
    }, listenerOptions(o));
    if (https) {
      new aws.lb.Listener(n("listener-redirect"), {
        loadBalancerArn: alb.arn,
        port: 80,
        protocol: "HTTP",
        defaultActions: redirectToHttps(),
        // After the weighted listener has left port 80 (adding a certificate to a running stack).
      }, { ...o, dependsOn: [listener] });
    }

    const groups: Record<Color, aws.lb.TargetGroup> = { blue, green };
    // The idle colour (green at first) runs nothing outside a release: the shifter scales it.
    const desired: Record<Color, number> = { blue: args.desiredCount, green: 0 };
    for (const color of COLORS) {
      const service = new aws.ecs.Service(n(`svc-${color}`), {
        name: serviceName(color, args.suffix, args.region),
        cluster: cluster.arn,
        taskDefinition: taskDefinition(color).arn,
        desiredCount: desired[color],
        launchType: "FARGATE",
        networkConfiguration: {
          subnets: args.privateSubnetIds,
          securityGroups: [args.taskSecurityGroupId],
          assignPublicIp: false,
        },
        loadBalancers: [{ targetGroupArn: groups[color].arn, containerName: "app", containerPort: args.containerPort }],
        forceDelete: true,
      }, serviceOptions({ ...o, dependsOn: [listener] }));
      const target = new aws.appautoscaling.Target(n(`scaling-target-${color}`), {
        serviceNamespace: "ecs",
        scalableDimension: "ecs:service:DesiredCount",
        resourceId: pulumi.interpolate`service/${cluster.name}/${service.name}`,
        minCapacity: desired[color],
        maxCapacity: args.maxCount,
      }, scalingTargetOptions(o));
      this.scalingTargetArns.push(target.arn);
      const scaling: [string, string, number][] = [
        ["cpu", "ECSServiceAverageCPUUtilization", 60],
        ["memory", "ECSServiceAverageMemoryUtilization", 70],
      ];
      for (const [kind, metric, value] of scaling) {
        new aws.appautoscaling.Policy(n(`scaling-${color}-${kind}`), {
          policyType: "TargetTrackingScaling",
          serviceNamespace: target.serviceNamespace,
          scalableDimension: target.scalableDimension,
          resourceId: target.resourceId,
          targetTrackingScalingPolicyConfiguration: {
            predefinedMetricSpecification: { predefinedMetricType: metric },
            targetValue: value,
            scaleInCooldown: 120,
            scaleOutCooldown: 60,
          },
        }, o);
      }
    }

    this.listenerArn = listener.arn;
    this.blueTargetGroupArn = blue.arn;
    this.greenTargetGroupArn = green.arn;
    this.targetGroupArnSuffixes = { blue: blue.arnSuffix, green: green.arnSuffix };
    this.albArnSuffix = alb.arnSuffix;
    this.albDnsName = alb.dnsName;
    this.clusterName = cluster.name;
    this.taskRoleArns = [executionRole.arn, taskRole.arn];
    this.registerOutputs({ listenerArn: this.listenerArn, albDnsName: this.albDnsName });
  }
}
