# The backup task's first container (AWS CLI): waits until the tasks of the run that ended
# have stopped (ECS stops a task some seconds after StopTask), so that no world database is
# read while its server may still write it. Environment: AFTER_TASKS (task ARNs separated by
# spaces; empty when every task had already stopped), CLUSTER. The AWS CLI's waiter polls
# every 6 seconds, 100 times at most; when it gives up, this container fails and nothing is
# archived.
set -eu
if [ -z "${AFTER_TASKS:-}" ]; then echo "no task of the run is still stopping"; exit 0; fi
case "$AFTER_TASKS" in *[!A-Za-z0-9:/._\ -]*) echo "refusing AFTER_TASKS '$AFTER_TASKS'"; exit 2;; esac
# shellcheck disable=SC2086 # one argument per ARN
aws ecs wait tasks-stopped --cluster "$CLUSTER" --tasks $AFTER_TASKS
echo "the run's tasks have stopped"
