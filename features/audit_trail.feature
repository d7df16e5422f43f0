Feature: The audit trail
  Every change is recorded, nothing can be changed unnoticed, and anyone can
  verify the trail (21 CFR 11.10(a), 11.10(c), 11.10(e); EU GMP Annex 11 §9).

  Background:
    Given a fresh GxP installation

  @req:11.10e @req:annex11.9
  Scenario: Changes are recorded with who, what and why
    When "admin" deactivates "op2" with reason "left the company"
    Then the audit trail records "user.deactivate" for user "op2" with reason "left the company"
    And the audit trail verifies

  @req:11.10c
  Scenario: The database refuses to rewrite history
    When someone tries to change an audit entry with SQL
    Then the database refuses the change
    And the audit trail verifies

  @req:11.10a @req:11.10c
  Scenario: An entry edited behind the system's back is found
    Given a signed checkpoint of the audit trail
    When someone edits audit entry 5 directly in the database
    Then verification reports "hash_mismatch" at entry 5

  @req:11.10a @req:11.10c
  Scenario: A cut-off tail is found with the signed checkpoint
    Given a signed checkpoint of the audit trail
    When someone deletes the last 3 audit entries
    Then verification reports "truncated" at the first deleted entry

  @req:annex11.9 @req:11.10e @req:211.192
  Scenario: Release needs a signed review of the batch's audit trail
    Given batch "B-1" has been executed and verified
    When QA completes the review of batch "B-1" but not of its audit trail
    And "qa2" releases batch "B-1"
    Then the action is refused with "audit trail"
    And batch "B-1" is "Reviewed"
    When "qa1" records a review of the audit trail of batch "B-1" with a hash the trail does not give
    Then the action is refused with "review what the trail holds"
    And batch "B-1" has 0 recorded audit-trail review(s)
    When "qa1" reviews the audit trail of batch "B-1"
    Then the action succeeds
    And batch "B-1" has 1 recorded audit-trail review(s)
    When "qa2" releases batch "B-1"
    Then the action succeeds
    And batch "B-1" is "Released"
    And the audit trail verifies
