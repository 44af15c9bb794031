// cutover: the platform in three AWS regions. This file only reads config and composes.
import * as pulumi from "@pulumi/pulumi";

import { name, readSettings } from "./config";
import { Platform } from "./components/platform";

const settings = readSettings(new pulumi.Config());
const platform = new Platform(name("cutover", settings.suffix), settings);

export const regions = platform.regions;
export const globalClusterId = platform.globalClusterId;
export const stateTableName = platform.stateTableName;
export const parameterNames = platform.parameterNames;
export const replicationTaskArn = platform.replicationTaskArn;
export const vpnConnectionId = platform.vpnConnectionId;
export const functionArns = platform.functionArns;
export const opsTopicArn = platform.opsTopicArn;
export const runbookArn = platform.runbookArn;
export const validationMachineArn = platform.validationMachineArn;
