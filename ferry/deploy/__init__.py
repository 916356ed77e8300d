"""`ferry deploy` without the CLI: images (build/push by digest), plan (pure), rollout (executes).

plan = plan_deploy(machines, choose_regions(...), "rolling")
result = Rollout(client, "web", config_for, wait_timeout=300, max_unavailable=0.33).run(plan)
"""
