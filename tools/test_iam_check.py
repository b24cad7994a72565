"""Unit tests of the IAM coverage check's parts: the action mapping, the request → authorization
translation, the policy evaluation and the template resolver. Run by `make iam-check`:
python -m unittest discover -s tools -p 'test_*.py'."""

import unittest

import cfn
import iam_check as ic


class ActionMapping(unittest.TestCase):
    def test_operations_named_like_their_action(self):
        self.assertEqual(ic.operation_actions("ecs", "ListTasks"), ["ecs:ListTasks"])
        self.assertEqual(ic.operation_actions("dynamodb", "GetItem"), ["dynamodb:GetItem"])

    def test_operations_whose_action_has_another_name(self):
        # From the Service Authorization Reference's API links, not from a hand table.
        self.assertEqual(ic.operation_actions("s3", "ListObjectsV2"), ["s3:ListBucket"])
        self.assertEqual(ic.operation_actions("s3", "ListObjectVersions"), ["s3:ListBucketVersions"])
        self.assertEqual(ic.operation_actions("s3", "PutPublicAccessBlock"), ["s3:PutBucketPublicAccessBlock"])
        self.assertEqual(ic.operation_actions("s3", "PutBucketCors"), ["s3:PutBucketCORS"])
        # From the hand table, with its source.
        self.assertEqual(ic.operation_actions("s3", "HeadBucket"), ["s3:ListBucket"])

    def test_arn_shapes_come_from_the_database(self):
        ic.check_arn_shape("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/t")
        with self.assertRaises(SystemExit):
            ic.check_arn_shape("dynamodb:GetItem", "arn:aws:s3:::bucket")
        with self.assertRaises(SystemExit):  # an action on "*" only
            ic.check_arn_shape("ecs:DescribeTaskDefinition", "arn:aws:ecs:us-east-1:1:task-definition/x:1")


class Requests(unittest.TestCase):
    def test_a_transaction_is_authorized_per_item(self):
        rec = {"service": "DynamoDB", "operation": "TransactWriteItems", "uri": "http://x/", "fields": [
            ["TransactItems.0.Put.TableName", "a"], ["TransactItems.1.ConditionCheck.TableName", "b"]]}
        auths = ic.Requests({}).auths(rec)
        self.assertEqual([(a.action, a.resource) for a in auths], [
            ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/a"),
            ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:us-east-1:123456789012:table/b")])

    def test_register_task_definition_passes_roles_and_tags_on_create(self):
        rec = {"service": "ECS", "operation": "RegisterTaskDefinition", "uri": "http://x/", "fields": [
            ["family", "foundry-1"], ["taskRoleArn", "arn:aws:iam::1:role/t"],
            ["executionRoleArn", "arn:aws:iam::1:role/e"], ["tags.0.key", "UserId"], ["tags.0.value", "1"]]}
        got = {(a.action, a.resource) for a in ic.Requests({}).auths(rec)}
        self.assertIn(("iam:PassRole", "arn:aws:iam::1:role/t"), got)
        self.assertIn(("iam:PassRole", "arn:aws:iam::1:role/e"), got)
        self.assertIn(("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:task-definition/foundry-1:*"), got)

    def test_route53_names_are_normalized(self):
        rec = {"service": "Route 53", "operation": "ChangeResourceRecordSets",
               "uri": "http://x/2013-04-01/hostedzone/Z1/rrset", "fields": [
                   ["Action", "CREATE"], ["Name", "Bob.Foundry.Test."], ["Type", "A"]]}
        (a,) = ic.Requests({}).auths(rec)
        self.assertEqual(a.context["route53:ChangeResourceRecordSetsNormalizedRecordNames"], ["bob.foundry.test"])


class Evaluation(unittest.TestCase):
    def test_condition_operators(self):
        self.assertTrue(ic.conditions_hold({"StringLikeIfExists": {"aws:ResourceTag/Name": "foundry-*"}}, {}))
        self.assertFalse(ic.conditions_hold({"StringLike": {"aws:ResourceTag/Name": "foundry-*"}}, {}))
        self.assertFalse(ic.conditions_hold({"StringLikeIfExists": {"aws:ResourceTag/Name": "foundry-*"}},
                                            {"aws:ResourceTag/Name": ["other"]}))
        names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
        cond = {"ForAllValues:StringLike": {names: "*.foundry.test"}}
        self.assertTrue(ic.conditions_hold(cond, {names: ["a.foundry.test", "b.foundry.test"]}))
        self.assertFalse(ic.conditions_hold(cond, {names: ["a.foundry.test", "a.evil.test"]}))
        self.assertTrue(ic.conditions_hold({"ArnEquals": {"ecs:cluster": "arn:c"}}, {"ecs:cluster": ["arn:c"]}))

    def test_a_request_outside_the_granted_resources_is_denied_by_name(self):
        st = ic.Statement("R", "Logs", ["logs:DeleteLogGroup"], ["arn:aws:logs:r:1:log-group:/aws/ecs/foundry-*"], {})
        ok = ic.Auth("logs:DeleteLogGroup", "arn:aws:logs:r:1:log-group:/aws/ecs/foundry-1", request="ok")
        bad = ic.Auth("logs:DeleteLogGroup", "arn:aws:logs:r:1:log-group:/ecs/foundry-1", request="legacy")
        denied, used = ic.evaluate("role", [st], [ok, bad])
        self.assertEqual(len(denied), 1)
        self.assertIn("/ecs/foundry-1", denied[0])
        self.assertIn("legacy", denied[0])
        self.assertEqual(used[("Logs", "logs:DeleteLogGroup")], 1)

    def test_unused_grants_fail_unless_explained(self):
        st = ic.Statement("ExecutionRole", "X", ["ecs:ListTasks"], ["*"], {})
        bad, explained = ic.unused_grants([st], {})
        self.assertEqual(len(bad), 2)
        self.assertEqual(explained, [])


class Resolver(unittest.TestCase):
    def test_sub_ref_if_and_join(self):
        template = {"Parameters": {"A": {"Type": "String"}, "B": {"Type": "String", "Default": "d"}},
                    "Conditions": {"HasA": {"Fn::Not": [{"Fn::Equals": [{"Ref": "A"}, ""]}]}}}
        r = cfn.Resolver(template, {"A": "x"}, {"AWS::Region": "r"})
        self.assertEqual(r.resolve({"Fn::Sub": "${AWS::Region}:${A}:${B}"}), "r:x:d")
        self.assertEqual(r.resolve({"Fn::If": ["HasA", "yes", "no"]}), "yes")
        self.assertEqual(r.resolve({"Fn::Join": ["-", [{"Ref": "A"}, {"Fn::Select": [1, {"Fn::Split": [",", "p,q"]}]}]]}),
                         "x-q")


if __name__ == "__main__":
    unittest.main()
